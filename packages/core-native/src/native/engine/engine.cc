#include "engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <tuple>

#include "common/clock.h"
#include "common/error.h"

namespace unicc {

namespace {

// Words of a rank's round message, before the bitmap of agreed ids it holds.
enum Word { kFlags = 0, kDescribedBytes = 1, kTunerRate = 2, kRingRate = 3, kHeaderWords = 4 };
constexpr int64_t kStopping = 1, kHolding = 2;
constexpr int kMaxIdleSleepMs = 20;
constexpr size_t kMaxNameBytes = 1024;
// A tuner window: this many reductions per candidate before the ranks compare rates.
// A tuner window: at least this many reductions and bytes per candidate (or the cap of reductions,
// for models too small to matter), so that one busy moment does not decide.
constexpr int kTunerWindow = 6, kTunerWindowCap = 64;
constexpr double kTunerWindowBytes = 256e6;
// How much faster than the configured settings a candidate must measure to replace them.
constexpr double kTunerMargin = 1.1;
// A tensor this large reduces about as fast alone as fused, and alone it needs no copies.
constexpr size_t kInPlaceBytes = 1 << 20;
// Ring balance: rates are compared over windows of this many bytes reduced (the same count on every
// rank, whatever its share), and the split moves halfway to the measured rates each time, keeping
// every local rank at least a quarter of an equal share.
constexpr double kBalanceWindowBytes = 64e6, kBalanceDamping = 0.5, kMinShareOfEqual = 0.25;

void put(std::vector<char>& out, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  out.insert(out.end(), c, c + n);
}

}  // namespace

std::string Engine::Meta::str() const {
  std::string s = std::string(dtype_name(dtype)) + "[" + std::to_string(count) + "] (" + redop_name(op);
  if (wire != Wire::Exact) s += std::string(", ") + wire_name(wire);
  return s + ")";
}

// What every rank learned in one round.
struct Engine::Round {
  std::vector<std::vector<int64_t>> words;             // per rank
  std::vector<std::vector<Meta>> described;        // per rank: new names it holds
};

Engine::Engine(Communicator& comm, EngineOptions o)
    : comm_(comm), opt_(std::move(o)), timeline_(opt_.timeline_path, comm.options().rank),
      rank_(comm.options().rank), size_(comm.options().size) {
  if (opt_.autotune) {
    register_tunables();
    // The configured settings first: the others must beat them clearly to be chosen.
    tuner_.start(kTunerMargin);
  }
  const Topology& topo = comm.topology();
  // The host's ranks split allreduces only where they cross hosts hierarchically.
  if (topo.hierarchical && topo.num_hosts > 1 && topo.local_size > 1) {
    const size_t L = static_cast<size_t>(topo.local_size);
    if (!opt_.host_shares.empty() && opt_.host_shares.size() != L)
      throw CommError("UNICC_HOST_SHARES gives " + std::to_string(opt_.host_shares.size()) + " shares, but every host runs " +
                      std::to_string(L) + " ranks: give one weight per rank of a host, or 'auto' or 'even'");
    set_shares(opt_.host_shares.empty() ? std::vector<double>(L, 1.0) : opt_.host_shares);
    balancing_ = opt_.balance_rings && opt_.host_shares.empty();
  }
  if (size_ > 1) comm_.run_async([this] { loop(); }, [](const std::string&) {});
}

Engine::~Engine() { abandon(); }

std::string Engine::label() const { return "rank " + std::to_string(rank_); }

void Engine::register_tunables() {
  auto kib = [](const char* what) { return [what](size_t v) { return std::string(what) + std::to_string(v >> 10) + " KiB"; }; };
  Tunable streams{[](size_t v) { return std::to_string(v) + (v == 1 ? " stream" : " streams"); },
                  [this] { return static_cast<size_t>(comm_.streams_in_use()); },
                  [this](size_t v) { comm_.use_streams(static_cast<int>(v)); }, {}};
  const size_t most = static_cast<size_t>(comm_.options().streams);
  if (comm_.topology().num_hosts > 1)
    for (size_t n : {1, 2, 4, 8})
      if (n < most) streams.tries.push_back(n);
  tuner_.add(std::move(streams));
  tuner_.add({kib("fusion "), [this] { return opt_.fusion_bytes; }, [this](size_t v) { opt_.fusion_bytes = v; },
              {size_t{4} << 20, size_t{16} << 20, size_t{64} << 20}});
  if (comm_.pipelines())
    tuner_.add({kib("pieces "), [this] { return comm_.piece_bytes(); }, [this](size_t v) { comm_.set_piece_bytes(v); },
                {size_t{2} << 20, size_t{8} << 20, size_t{32} << 20}});
}

bool Engine::tuning() const {
  std::lock_guard<std::mutex> lock(mu_);
  return opt_.autotune && tuner_.active();
}

std::string Engine::settings() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string s = opt_.autotune ? tuner_.current()
                                : std::to_string(comm_.streams_in_use()) + (comm_.streams_in_use() == 1 ? " stream" : " streams") +
                                      ", fusion " + std::to_string(opt_.fusion_bytes >> 10) + " KiB";
  if (opt_.autotune) s += tuner_.active() ? " (tuning)" : " (tuned)";
  if (!shares_.empty()) {
    s += ", local ranks' shares";
    for (size_t l = 0; l < shares_.size(); ++l) s += (l ? "/" : " ") + std::to_string(static_cast<int>(shares_[l] * 100 + 0.5));
    s += balancing_ ? " % (balanced)" : " % (fixed)";
  }
  return s;
}

// Called with the ranks' mean rate for the current candidate; moves on, the same way everywhere.
void Engine::next_candidate(double rate) {
  std::lock_guard<std::mutex> lock(mu_);
  tuner_.measured(rate);
  if (!tuner_.active() && rank_ == 0) std::fprintf(stderr, "unicc: tuner chose %s\n", tuner_.report().c_str());
}

void Engine::submit(NamedRequest r) {
  if (r.name.empty() || r.name.size() > kMaxNameBytes) {
    r.done("a named allreduce needs a name of 1 to " + std::to_string(kMaxNameBytes) + " bytes");
    return;
  }
  if (size_ == 1) {  // nothing to agree on; an average of one is the value itself
    r.done("");
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!failed_.empty()) {
    const std::string e = failed_;
    lock.unlock();
    r.done(e);
    return;
  }
  if (stop_requested_) {
    lock.unlock();
    r.done("allreduce of '" + r.name + "' on " + label() + " after the world started closing");
    return;
  }
  inbox_.push_back(std::move(r));
  cv_.notify_all();
}

void Engine::shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  stop_requested_ = true;
  cv_.notify_all();
  if (size_ > 1) cv_.wait(lock, [this] { return finished_; });
}

void Engine::abandon() {
  std::unique_lock<std::mutex> lock(mu_);
  abandoned_ = stop_requested_ = true;
  cv_.notify_all();
  if (size_ > 1) cv_.wait(lock, [this] { return finished_; });
}

void Engine::fail_all(const std::string& error) {
  std::vector<NamedRequest> waiting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = error;
    waiting.swap(inbox_);
  }
  for (auto& [name, p] : pending_) p.req.done(error);
  pending_.clear();
  for (auto& r : waiting) r.done(error);
}

void Engine::loop() {
  int sleep_ms = 0;
  try {
    for (;;) {
      bool stopping;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (sleep_ms > 0)
          cv_.wait_for(lock, std::chrono::milliseconds(sleep_ms), [this] { return !inbox_.empty() || stop_requested_; });
        stopping = stop_requested_;
        if (abandoned_) throw CommError(label() + " closed its world without waiting for the others (close() was not awaited, or the process is exiting)");
        for (auto& r : inbox_) {
          std::string name = r.name;
          if (pending_.count(name)) {
            r.done("'" + name + "' is already being reduced on " + label() +
                   "; wait for its allreduce to finish before submitting the name again");
            continue;
          }
          Pending p{std::move(r), now_us()};
          auto it = id_of_.find(name);
          if (it != id_of_.end()) {
            if (agreed_[it->second] == Meta::of(p.req)) p.id = it->second;  // else described again, and every rank sees the conflict
          }
          pending_.emplace(name, std::move(p));
        }
        inbox_.clear();
      }
      bool all_stopping = false;
      const bool progressed = run_round(stopping, &all_stopping);
      if (all_stopping && !progressed) break;
      if (progressed) sleep_ms = 0;
      // Holding tensors while some rank holds none: wait for it inside the next round (asleep in
      // the collective), so its first submission completes the round at once. Everybody holding
      // but nothing in common: pause a cycle, or the rounds would spin until the next submission.
      else if (!pending_.empty() && !everyone_holding_) sleep_ms = 0;
      else if (!pending_.empty()) sleep_ms = opt_.cycle_ms;
      else sleep_ms = std::min(kMaxIdleSleepMs, std::max(opt_.cycle_ms, sleep_ms * 2));
    }
    const std::string leftover = "the world closed on every rank while this allreduce waited for ranks that never submitted it";
    for (auto& [name, p] : pending_) p.req.done("'" + name + "' on " + label() + ": " + leftover);
    pending_.clear();
  } catch (const std::exception& e) {
    fail_all(e.what());
    finish();
    throw;  // the communicator's thread passes the cause on to the peers
  }
  finish();
}

void Engine::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  finished_ = true;
  cv_.notify_all();
}

bool Engine::run_round(bool stopping, bool* all_stopping) {
  const size_t id_words = (agreed_.size() + 63) / 64;
  const size_t W = kHeaderWords + id_words;
  std::vector<int64_t> mine(W, 0);
  std::vector<char> described;
  for (const auto& [name, p] : pending_) {
    if (p.id >= 0) {
      mine[kHeaderWords + p.id / 64] |= int64_t{1} << (p.id % 64);
      continue;
    }
    const uint16_t len = static_cast<uint16_t>(name.size());
    const uint8_t meta[4] = {static_cast<uint8_t>(p.req.dtype), static_cast<uint8_t>(p.req.op),
                             static_cast<uint8_t>(p.req.wire), 0};
    const uint64_t count = p.req.count;
    put(described, &len, 2);
    put(described, name.data(), len);
    put(described, meta, 4);
    put(described, &count, 8);
  }
  mine[kFlags] = (stopping ? kStopping : 0) | (pending_.empty() ? 0 : kHolding);
  mine[kDescribedBytes] = static_cast<int64_t>(described.size());
  std::memcpy(&mine[kTunerRate], &my_rate_report_, 8);
  std::memcpy(&mine[kRingRate], &my_ring_rate_report_, 8);
  my_rate_report_ = my_ring_rate_report_ = -1;

  const int64_t round_start = now_us();
  Round round;
  std::vector<int64_t> all(W * size_);
  Op gather;
  gather.coll = Coll::Allgather;
  gather.dtype = DType::I64;
  gather.buf = mine.data();
  gather.out = all.data();
  gather.count = W;
  comm_.run_inline(gather);
  round.words.resize(size_);
  size_t max_described = 0;
  everyone_holding_ = true;
  *all_stopping = true;
  for (int r = 0; r < size_; ++r) {
    round.words[r].assign(all.begin() + r * W, all.begin() + (r + 1) * W);
    max_described = std::max(max_described, static_cast<size_t>(round.words[r][kDescribedBytes]));
    everyone_holding_ = everyone_holding_ && (round.words[r][kFlags] & kHolding);
    *all_stopping = *all_stopping && (round.words[r][kFlags] & kStopping);
  }

  // The tuner: every rank reported its rate for the candidate that just finished; all average.
  double rate;
  std::memcpy(&rate, &round.words[0][kTunerRate], 8);
  if (rate >= 0 && opt_.autotune && tuner_.active()) {
    double sum = 0;
    for (int r = 0; r < size_; ++r) { double x; std::memcpy(&x, &round.words[r][kTunerRate], 8); sum += x; }
    next_candidate(sum / size_);
  }
  if (balancing_) rebalance(round);

  round.described.resize(size_);
  if (max_described > 0) {
    const size_t padded_words = (max_described + 7) / 8;
    std::vector<int64_t> buf(padded_words, 0), lists(padded_words * size_);
    std::memcpy(buf.data(), described.data(), described.size());
    Op g2 = gather;
    g2.buf = buf.data();
    g2.out = lists.data();
    g2.count = padded_words;
    comm_.run_inline(g2);
    for (int r = 0; r < size_; ++r) {
      const char* p = reinterpret_cast<const char*>(lists.data() + r * padded_words);
      const char* end = p + round.words[r][kDescribedBytes];
      while (p < end) {
        uint16_t len;
        std::memcpy(&len, p, 2);
        if (p + 2 + len + 12 > end) throw CommError("corrupt negotiation message from rank " + std::to_string(r));
        Meta m;
        m.name.assign(p + 2, len);
        const uint8_t* meta = reinterpret_cast<const uint8_t*>(p + 2 + len);
        m.dtype = static_cast<DType>(meta[0]);
        m.op = static_cast<RedOp>(meta[1]);
        m.wire = static_cast<Wire>(meta[2]);
        std::memcpy(&m.count, p + 2 + len + 4, 8);
        p += 2 + len + 4 + 8;
        round.described[r].push_back(std::move(m));
      }
    }
  }

  // Decide, identically on every rank: agreed names everybody holds, then new names everybody
  // described the same way (ids handed out in name order), and conflicts.
  std::vector<int> ready;
  for (size_t id = 0; id < agreed_.size(); ++id) {
    bool all = true;
    for (int r = 0; r < size_ && all; ++r) all = (round.words[r][kHeaderWords + id / 64] >> (id % 64)) & 1;
    if (all) ready.push_back(static_cast<int>(id));
  }
  std::map<std::string, std::vector<std::pair<int, Meta>>> by_name;
  for (int r = 0; r < size_; ++r)
    for (const Meta& m : round.described[r]) by_name[m.name].push_back({r, m});
  std::map<std::string, std::string> errors;
  for (auto& [name, holders] : by_name) {
    // Decide only once every rank holds the name, so that every rank has it to fail or finish.
    const auto known = id_of_.find(name);
    int holding = static_cast<int>(holders.size());
    if (known != id_of_.end()) {
      const int id = known->second;
      for (int r = 0; r < size_; ++r) holding += (round.words[r][kHeaderWords + id / 64] >> (id % 64)) & 1;
    }
    if (holding < size_) continue;
    // An agreed name is described again when a rank changed it: fine if every rank changed it the
    // same way (a model rebuilt, DDP's buckets re-formed), a conflict if some still hold the old.
    bool same = known == id_of_.end() || static_cast<int>(holders.size()) == size_;
    for (auto& h : holders) same = same && h.second == holders[0].second;
    if (same && known != id_of_.end()) {
      agreed_[known->second] = holders[0].second;
      ready.push_back(known->second);
      continue;
    }
    if (!same) {
      std::string e = "'" + name + "' was submitted differently on different ranks:";
      if (known != id_of_.end()) e += " the others as agreed earlier, " + agreed_[known->second].str() + ";";
      for (auto& h : holders) e += " rank " + std::to_string(h.first) + ": " + h.second.str() + ";";
      e += " every rank must submit a name with the same length, type, op and compression";
      errors[name] = e;
      continue;
    }
    const int id = static_cast<int>(agreed_.size());
    agreed_.push_back(holders[0].second);
    id_of_[name] = id;
    timeline_.name_row(id + 1, name);
    ready.push_back(id);
  }
  for (auto& [name, e] : errors) {
    auto it = pending_.find(name);
    if (it != pending_.end()) {
      it->second.req.done(e + " (reported by " + label() + ")");
      pending_.erase(it);
    }
  }
  // A conflicting name may also be held through its agreed id on other ranks: drop those too.
  ready.erase(std::remove_if(ready.begin(), ready.end(), [&](int id) { return errors.count(agreed_[id].name) > 0; }),
              ready.end());
  // A name agreed this round goes by its id from now on; a changed one stays described until the
  // ranks decide on it (taking the old id would make this rank vouch for the old description).
  for (auto& [name, p] : pending_) {
    const auto known = id_of_.find(name);
    if (p.id >= 0 || known == id_of_.end() || errors.count(name)) continue;
    if (agreed_[known->second] == Meta::of(p.req)) p.id = known->second;
  }

  report_stalls(round);
  if (!ready.empty()) {
    for (int id : ready) {
      auto it = pending_.find(agreed_[id].name);
      if (it != pending_.end() && timeline_.enabled())
        timeline_.span(id + 1, "negotiate", it->second.submitted_us, round_start);
    }
    execute(ready);
  }
  return !ready.empty() || !errors.empty();
}

void Engine::report_stalls(const Round& round) {
  // Which ranks hold each name that some, not all, ranks hold.
  std::map<std::string, std::vector<int>> holders;
  for (int r = 0; r < size_; ++r) {
    for (size_t id = 0; id < agreed_.size(); ++id)
      if ((round.words[r][kHeaderWords + id / 64] >> (id % 64)) & 1) holders[agreed_[id].name].push_back(r);
    for (const Meta& m : round.described[r]) holders[m.name].push_back(r);
  }
  const int64_t now = now_ms();
  std::string report;
  int listed = 0;
  for (auto it = stalled_since_ms_.begin(); it != stalled_since_ms_.end();) {
    auto h = holders.find(it->first);
    if (h == holders.end() || static_cast<int>(h->second.size()) == size_) {
      stall_reported_.erase(it->first);
      it = stalled_since_ms_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [name, ranks] : holders) {
    if (static_cast<int>(ranks.size()) == size_) continue;
    const int64_t since = stalled_since_ms_.emplace(name, now).first->second;
    if (now - since < int64_t{opt_.stall_warn_s} * 1000 || stall_reported_[name]) continue;
    stall_reported_[name] = true;
    if (++listed > 8) continue;
    std::string missing;
    for (int r = 0, i = 0; r < size_; ++r) {
      if (i < static_cast<int>(ranks.size()) && ranks[i] == r) { ++i; continue; }
      missing += (missing.empty() ? "" : ",") + std::to_string(r);
    }
    report += "\n  '" + name + "' missing on ranks " + missing;
  }
  if (listed > 8) report += "\n  ... and " + std::to_string(listed - 8) + " more";
  if (!report.empty())
    std::fprintf(stderr,
                 "unicc: %s: stall: for over %d s some ranks submitted these tensors and others did not "
                 "(a rank skipped a gradient, or is much slower):%s\n",
                 label().c_str(), opt_.stall_warn_s, report.c_str());
}

void Engine::execute(const std::vector<int>& ready_ids) {
  // Same order on every rank: agreed id order, grouped by how the values are reduced; small
  // tensors are packed into fusion buffers, large ones travel alone, in place, without copies.
  std::map<std::tuple<int, int, int>, std::vector<Pending*>> kinds;
  for (int id : ready_ids) {
    Pending& p = pending_.at(agreed_[id].name);
    p.id = id;
    kinds[{static_cast<int>(p.req.dtype), static_cast<int>(p.req.op), static_cast<int>(p.req.wire)}].push_back(&p);
  }
  std::vector<std::vector<Pending*>> groups;
  for (auto& [kind, list] : kinds) {
    size_t open = SIZE_MAX, open_bytes = 0;  // the fusion group being filled
    for (Pending* p : list) {
      const size_t bytes = p->req.count * dtype_size(p->req.dtype);
      if (bytes >= kInPlaceBytes) {
        groups.push_back({p});
        continue;
      }
      if (open == SIZE_MAX || open_bytes + bytes > opt_.fusion_bytes) {
        open = groups.size();
        open_bytes = 0;
        groups.emplace_back();
      }
      groups[open].push_back(p);
      open_bytes += bytes;
    }
  }
  reduce_groups(groups);
}

void Engine::reduce_groups(const std::vector<std::vector<Pending*>>& groups) {
  const int64_t t0 = now_us();
  size_t fused_bytes = 0, total_bytes = 0;
  for (const auto& g : groups)
    for (Pending* p : g) {
      const size_t bytes = p->req.count * dtype_size(p->req.dtype);
      total_bytes += bytes;
      if (g.size() > 1) fused_bytes += bytes;
    }
  fusion_.resize(std::max(fusion_.size(), fused_bytes));
  std::vector<Op> ops(groups.size());
  std::vector<size_t> fusion_at(groups.size(), 0);
  size_t off = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    const NamedRequest& first = groups[i][0]->req;
    const size_t es = dtype_size(first.dtype);
    Op& op = ops[i];
    op.coll = Coll::Allreduce;
    op.dtype = first.dtype;
    op.op = first.op;
    op.wire = first.wire;
    op.buf = first.buf;
    op.count = 0;
    for (Pending* p : groups[i]) op.count += p->req.count;
    if (groups[i].size() > 1) {
      fusion_at[i] = off;
      op.buf = fusion_.data() + off;
      for (Pending* p : groups[i]) {
        std::memcpy(fusion_.data() + off, p->req.buf, p->req.count * es);
        off += p->req.count * es;
      }
    }
  }
  const int64_t t1 = now_us(), coding0 = wire16_thread_ns();
  std::vector<Op*> run;
  for (Op& op : ops) run.push_back(&op);
  comm_.run_inline_many(run);
  const int64_t t2 = now_us(), coding_ns = wire16_thread_ns() - coding0;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].size() < 2) continue;
    size_t at = fusion_at[i];
    for (Pending* p : groups[i]) {
      const size_t bytes = p->req.count * dtype_size(p->req.dtype);
      std::memcpy(p->req.buf, fusion_.data() + at, bytes);
      at += bytes;
    }
  }
  const int64_t t3 = now_us();
  tune(total_bytes, t3 - t0, static_cast<int>(ops.size()));
  if (balancing_) measure_rings(total_bytes);
  for (size_t i = 0; i < groups.size(); ++i) {
    const bool fused = groups[i].size() > 1;
    for (Pending* p : groups[i]) {
      if (timeline_.enabled()) {
        const int row = p->id + 1;
        if (fused) timeline_.span(row, "fuse", t0, t1);
        const std::string args = "{\"bytes\":" + std::to_string(ops[i].count * dtype_size(ops[i].dtype)) +
                                 ",\"tensors\":" + std::to_string(groups[i].size()) + ",\"wire\":\"" +
                                 wire_name(ops[i].wire) + "\",\"batch_bytes\":" + std::to_string(total_bytes) +
                                 ",\"batch_compress_ms\":" + std::to_string(coding_ns / 1e6) + "}";
        timeline_.span(row, ops[i].wire == Wire::Exact ? "allreduce" : "compress+allreduce", t1, t2, args);
        if (fused) timeline_.span(row, "unpack", t2, t3);
      }
      const std::string name = p->req.name;
      auto done = std::move(p->req.done);
      pending_.erase(name);
      done("");
    }
  }
}

void Engine::tune(size_t bytes, int64_t took_us, int reductions) {
  if (!opt_.autotune || !tuner_.active() || my_rate_report_ >= 0) return;
  candidate_bytes_ += static_cast<double>(bytes);
  candidate_seconds_ += static_cast<double>(took_us) / 1e6;
  tuner_reductions_ += reductions;
  if (tuner_reductions_ < kTunerWindowCap && (tuner_reductions_ < kTunerWindow || candidate_bytes_ < kTunerWindowBytes))
    return;
  my_rate_report_ = candidate_seconds_ > 0 ? candidate_bytes_ / candidate_seconds_ : 0;
  candidate_bytes_ = candidate_seconds_ = 0;
  tuner_reductions_ = 0;
}

void Engine::measure_rings(size_t batch_bytes) {
  const Communicator::RingUse use = comm_.take_ring_use();
  ring_bytes_ += use.bytes;
  ring_seconds_ += use.seconds;
  ring_window_bytes_ += static_cast<double>(batch_bytes);
  if (ring_window_bytes_ < kBalanceWindowBytes || my_ring_rate_report_ >= 0) return;
  my_ring_rate_report_ = ring_seconds_ > 0 ? ring_bytes_ / ring_seconds_ : -1;
  ring_window_bytes_ = ring_bytes_ = ring_seconds_ = 0;
}

// Identical on every rank: the same reported rates in, the same split out.
void Engine::rebalance(const Round& round) {
  const Topology& topo = comm_.topology();
  const size_t L = shares_.size();
  std::vector<double> rate(L, 0);
  for (int h = 0; h < topo.num_hosts; ++h)
    for (size_t l = 0; l < L; ++l) {
      double r;
      std::memcpy(&r, &round.words[topo.hosts[h][l]][kRingRate], 8);
      if (!(r > 0)) return;  // no window ended (or nothing measured) on some rank
      rate[l] += r / topo.num_hosts;
    }
  // Shares in proportion to rates would let every ring finish together at these rates.
  double total_rate = 0;
  for (double r : rate) total_rate += r;
  std::vector<double> shares(L);
  for (size_t l = 0; l < L; ++l)
    shares[l] = std::max(kMinShareOfEqual / L, (1 - kBalanceDamping) * shares_[l] + kBalanceDamping * rate[l] / total_rate);
  set_shares(std::move(shares));
}

void Engine::set_shares(std::vector<double> weights) {
  double total = 0;
  for (double w : weights) total += w;
  std::vector<uint32_t> bounds(weights.size() + 1, 0);
  double cumulative = 0;
  for (size_t l = 0; l < weights.size(); ++l) {
    weights[l] /= total;
    cumulative += weights[l];
    bounds[l + 1] = l + 1 == weights.size() ? kShareUnits : static_cast<uint32_t>(cumulative * kShareUnits);
  }
  comm_.set_host_split(std::move(bounds));
  std::lock_guard<std::mutex> lock(mu_);  // settings() reads them from other threads
  shares_ = std::move(weights);
}

}  // namespace unicc
