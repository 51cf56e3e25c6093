#include "engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/clock.h"
#include "common/error.h"

namespace unicc {

namespace {

// The reports every rank adds to its round message.
enum Report { kTunerRate = 0, kRingRate = 1, kReports = 2 };
constexpr int64_t kStopping = 1, kHolding = 2;
constexpr int kMaxIdleSleepMs = 20;
constexpr size_t kMaxNameBytes = 1024;
// A tuner window: at least this many reductions and bytes per candidate, so that one busy moment
// does not decide; or a cap of reductions, for small models. A model of few tensors reduces a few
// times a batch, so its cap is also a number of batches (steps, in training): each of them as
// slow as the candidate (one stream, say) makes it.
constexpr int kTunerWindow = 6, kTunerWindowCap = 64, kTunerWindowBatches = 16;
constexpr double kTunerWindowBytes = 256e6;
// How much faster than the configured settings a candidate must measure to replace them.
constexpr double kTunerMargin = 1.1;

}  // namespace

Engine::Engine(Communicator& comm, EngineOptions o)
    : comm_(comm), opt_(std::move(o)), timeline_(opt_.timeline_path, comm.options().rank),
      rank_(comm.options().rank), size_(comm.options().size), negotiation_(size_, kReports),
      stalls_(size_, opt_.stall_warn_s), balancer_(comm.split(), opt_.host_shares, opt_.balance_rings) {
  for (Tunable& t : comm_.tunables()) tuner_.add(std::move(t));
  tuner_.add({[](size_t v) { return "fusion " + std::to_string(v >> 10) + " KiB"; }, [this] { return opt_.fusion_bytes; },
              [this](size_t v) { opt_.fusion_bytes = v; }, {size_t{4} << 20, size_t{16} << 20, size_t{64} << 20},
              [this](size_t v, size_t base) { return fusion_matters(v, base); }});
  // The configured settings first: the others must beat them clearly to be chosen.
  if (opt_.autotune) tuner_.start(kTunerMargin);
  if (size_ > 1) comm_.run_async([this] { loop(); }, [](const std::string&) {});
}

Engine::~Engine() { abandon(); }

std::string Engine::label() const { return "rank " + std::to_string(rank_); }

bool Engine::tuning() const {
  std::lock_guard<std::mutex> lock(mu_);
  return opt_.autotune && tuner_.active();
}

std::string Engine::settings() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string s = tuner_.current();
  if (opt_.autotune) s += tuner_.active() ? " (tuning)" : " (tuned)";
  if (balancer_.splits()) s += ", " + balancer_.str();
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
          const int id = negotiation_.id_of(name);
          // Changed since agreed: described again, and every rank sees whether all changed it alike.
          if (id >= 0 && negotiation_.agreed(id) == p.meta()) p.id = id;
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

// One negotiation round's messages, carried by two allgathers: every rank's fixed-size words,
// then (where some rank holds names not agreed yet) every rank's descriptions, padded alike.
Round Engine::exchange(bool stopping) {
  std::vector<int> held;
  std::vector<TensorMeta> undescribed;
  for (const auto& [name, p] : pending_) {
    if (p.id >= 0) held.push_back(p.id);
    else undescribed.push_back(p.meta());
  }
  const std::vector<char> described = Negotiation::describe(undescribed);
  const int64_t flags = (stopping ? kStopping : 0) | (pending_.empty() ? 0 : kHolding);
  std::vector<int64_t> mine = negotiation_.words(flags, {my_rate_report_, my_ring_rate_report_}, held, described.size());
  my_rate_report_ = my_ring_rate_report_ = -1;
  std::vector<int64_t> all(mine.size() * size_);
  Op gather;
  gather.coll = Coll::Allgather;
  gather.dtype = DType::I64;
  gather.buf = mine.data();
  gather.out = all.data();
  gather.count = mine.size();
  comm_.run_inline(gather);
  Round round = negotiation_.read_words(all);
  const size_t most = negotiation_.max_described_bytes(round);
  if (most > 0) {
    const size_t padded_words = (most + 7) / 8;
    std::vector<int64_t> buf(padded_words, 0), lists(padded_words * size_);
    std::memcpy(buf.data(), described.data(), described.size());
    gather.buf = buf.data();
    gather.out = lists.data();
    gather.count = padded_words;
    comm_.run_inline(gather);
    negotiation_.read_described(round, reinterpret_cast<const char*>(lists.data()), padded_words * 8);
  }
  return round;
}

bool Engine::run_round(bool stopping, bool* all_stopping) {
  const int64_t round_start = now_us();
  const Round round = exchange(stopping);
  everyone_holding_ = true;
  *all_stopping = true;
  for (int r = 0; r < size_; ++r) {
    everyone_holding_ = everyone_holding_ && (round.flags(r) & kHolding);
    *all_stopping = *all_stopping && (round.flags(r) & kStopping);
  }
  // The tuner: every rank reported its rate for the candidate that just finished; all average.
  if (round.report(0, kTunerRate) >= 0 && opt_.autotune && tuner_.active()) {
    double sum = 0;
    for (int r = 0; r < size_; ++r) sum += round.report(r, kTunerRate);
    next_candidate(sum / size_);
  }
  if (balancer_.balancing()) {
    std::vector<double> rates(size_);
    for (int r = 0; r < size_; ++r) rates[r] = round.report(r, kRingRate);
    std::lock_guard<std::mutex> lock(mu_);  // settings() reads the shares from other threads
    balancer_.reported(rates);
  }

  const Negotiation::Decision decision = negotiation_.decide(round);
  for (int id : decision.added) timeline_.name_row(id + 1, negotiation_.agreed(id).name);
  for (auto& [name, e] : decision.errors) {
    auto it = pending_.find(name);
    if (it != pending_.end()) {
      it->second.req.done(e + " (reported by " + label() + ")");
      pending_.erase(it);
    }
  }
  // A name agreed this round goes by its id from now on; a changed one stays described until the
  // ranks decide on it (taking the old id would make this rank vouch for the old description).
  for (auto& [name, p] : pending_) {
    const int id = negotiation_.id_of(name);
    if (p.id >= 0 || id < 0 || decision.errors.count(name)) continue;
    if (negotiation_.agreed(id) == p.meta()) p.id = id;
  }

  std::map<std::string, std::vector<int>> partly = negotiation_.partly_held(round);
  const bool failed_lacked = fail_lacked_by_closing(round, partly);
  const std::string stall = stalls_.update(partly, now_ms());
  if (!stall.empty()) std::fprintf(stderr, "unicc: %s: %s\n", label().c_str(), stall.c_str());
  if (!decision.ready.empty()) {
    for (int id : decision.ready) {
      auto it = pending_.find(negotiation_.agreed(id).name);
      if (it != pending_.end() && timeline_.enabled())
        timeline_.span(id + 1, "negotiate", it->second.submitted_us, round_start);
    }
    execute(decision.ready);
  }
  return !decision.ready.empty() || !decision.errors.empty() || failed_lacked;
}

// A closing rank submits nothing more, so a name it does not hold now can never be reduced: this
// rank's request for it fails at once instead of waiting for the others to close too (or for a
// timeout). Such names leave `partly`; returns whether any did.
bool Engine::fail_lacked_by_closing(const Round& round, std::map<std::string, std::vector<int>>& partly) {
  bool failed = false;
  for (auto it = partly.begin(); it != partly.end();) {
    auto mine = pending_.find(it->first);
    std::vector<int> closing;
    for (int r = 0; mine != pending_.end() && r < size_; ++r)
      if ((round.flags(r) & kStopping) && !std::binary_search(it->second.begin(), it->second.end(), r)) closing.push_back(r);
    if (closing.empty()) {
      ++it;
      continue;
    }
    std::string who = closing.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < closing.size(); ++i) who += (i ? ", " : "") + std::to_string(closing[i]);
    mine->second.req.done("'" + it->first + "' on " + label() + ": " + who + (closing.size() == 1 ? " closed its world" : " closed their worlds") +
                          " without submitting it");
    pending_.erase(mine);
    it = partly.erase(it);
    failed = true;
  }
  return failed;
}

bool Engine::fusion_matters(size_t fusion_bytes, size_t base) const {
  for (const auto& batch : measured_batches_)
    if (plan_fusion(batch, fusion_bytes) != plan_fusion(batch, base)) return true;
  return false;
}

void Engine::execute(const std::vector<int>& ready_ids) {
  // Same order on every rank (fusion.h): small tensors are packed into fusion buffers, large ones
  // travel alone, in place, without copies.
  std::vector<Pending*> batch;
  std::vector<FusionInput> inputs;
  for (int id : ready_ids) {
    Pending& p = pending_.at(negotiation_.agreed(id).name);
    p.id = id;
    batch.push_back(&p);
    inputs.push_back({p.req.dtype, p.req.op, p.req.wire, p.req.count * dtype_size(p.req.dtype)});
  }
  if (opt_.autotune && tuner_.active()) window_batches_.push_back(inputs);
  std::vector<std::vector<Pending*>> groups;
  for (const auto& members : plan_fusion(inputs, opt_.fusion_bytes)) {
    groups.emplace_back();
    for (size_t i : members) groups.back().push_back(batch[i]);
  }
  reduce_groups(groups);
}

void Engine::reduce_groups(const std::vector<std::vector<Pending*>>& groups) {
  const int64_t t0 = now_us();
  size_t total_bytes = 0;
  std::vector<std::vector<Span>> spans(groups.size());
  for (size_t i = 0; i < groups.size(); ++i)
    for (Pending* p : groups[i]) {
      spans[i].push_back({p->req.buf, p->req.count * dtype_size(p->req.dtype), p->req.memory});
      total_bytes += spans[i].back().bytes;
    }
  const std::vector<void*> where = fusion_.pack(spans);
  std::vector<Op> ops(groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    const NamedRequest& first = groups[i][0]->req;
    Op& op = ops[i];
    op.coll = Coll::Allreduce;
    op.dtype = first.dtype;
    op.op = first.op;
    op.wire = first.wire;
    op.buf = where[i];
    if (groups[i].size() == 1) op.memory = first.memory;  // alone, in place: where it lives
    op.count = 0;
    for (Pending* p : groups[i]) op.count += p->req.count;
  }
  const int64_t t1 = now_us(), coding0 = wire16_thread_ns();
  std::vector<Op*> run;
  for (Op& op : ops) run.push_back(&op);
  comm_.run_inline_many(run);
  const int64_t t2 = now_us(), coding_ns = wire16_thread_ns() - coding0;
  fusion_.unpack(spans);
  const int64_t t3 = now_us();
  tune(total_bytes, t3 - t0, static_cast<int>(ops.size()));
  if (balancer_.balancing()) my_ring_rate_report_ = balancer_.measured(static_cast<double>(total_bytes));
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
  ++tuner_batches_;
  const bool capped = tuner_reductions_ >= kTunerWindowCap || tuner_batches_ >= kTunerWindowBatches;
  if (!capped && (tuner_reductions_ < kTunerWindow || candidate_bytes_ < kTunerWindowBytes)) return;
  // The first window warms up (connections, first touches of the buffers) and would make the
  // configured settings look slower than they are: it is measured again.
  if (tuner_warm_) my_rate_report_ = candidate_seconds_ > 0 ? candidate_bytes_ / candidate_seconds_ : 0;
  tuner_warm_ = true;
  measured_batches_ = std::move(window_batches_);
  window_batches_.clear();
  candidate_bytes_ = candidate_seconds_ = 0;
  tuner_reductions_ = tuner_batches_ = 0;
}

}  // namespace unicc
