#include "communicator.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <utility>

#include "algorithms/local.h"
#include "algorithms/partition.h"
#include "algorithms/schedules.h"
#include "common/clock.h"
#include "common/error.h"
#include "memory/user_buffer.h"
#include "transport/executor.h"

namespace unicc {

namespace {

// How long a caller that must not block looks for its peers before it leaves the rest of a
// collective to this communicator's thread: as long as a blocking waiter looks, since where ranks
// share cores the hand-off and the wake-ups after it cost more (bench README, 2026-12-08).
constexpr int64_t kEagerNs = 50'000;

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
  return h;
}

}  // namespace

Communicator::Communicator(Options o)
    : opt_(std::move(o)), job_key_(fnv1a64(opt_.job_id)), token_key_(token_key(opt_.token)) {
  if (opt_.size < 1 || opt_.rank < 0 || opt_.rank >= opt_.size)
    throw CommError("rank " + std::to_string(opt_.rank) + " is outside a world of size " +
                    std::to_string(opt_.size));
  if (opt_.streams < 1 || opt_.streams > static_cast<int>(kMaxStreams))
    throw CommError("UNICC_STREAMS=" + std::to_string(opt_.streams) + " must be between 1 and " + std::to_string(kMaxStreams));
  streams_in_use_ = opt_.streams;
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw CommError("eventfd failed: " + std::string(std::strerror(errno)));
  thread_ = std::thread([this] { worker(); });
}

Communicator::~Communicator() {
  close();
  ::close(wake_fd_);
}

std::string Communicator::label(int rank) const {
  std::string s = "rank " + std::to_string(rank);
  if (rank >= 0 && rank < static_cast<int>(peers_.size()))
    s += " (host " + peers_[rank].host + ", pid " + std::to_string(peers_[rank].pid) + ")";
  return s;
}

int Communicator::listen(const std::string& addr) {
  listener_ = std::make_unique<Listener>(addr);
  return listener_->port();
}

const Topology& Communicator::set_peers(std::vector<PeerInfo> peers) {
  if (static_cast<int>(peers.size()) != opt_.size)
    throw CommError("expected " + std::to_string(opt_.size) + " peers, got " + std::to_string(peers.size()));
  peers_ = std::move(peers);
  Topology t;
  std::map<std::string, int> host_of;
  for (int r = 0; r < opt_.size; ++r) {
    auto it = host_of.find(peers_[r].host);
    if (it == host_of.end()) {
      it = host_of.emplace(peers_[r].host, static_cast<int>(t.hosts.size())).first;
      t.hosts.emplace_back();
    }
    t.hosts[it->second].push_back(r);
  }
  t.num_hosts = static_cast<int>(t.hosts.size());
  t.host_index = host_of[peers_[opt_.rank].host];
  const auto& mine = t.hosts[t.host_index];
  t.local_size = static_cast<int>(mine.size());
  t.local_rank = static_cast<int>(std::find(mine.begin(), mine.end(), opt_.rank) - mine.begin());
  bool alike = true;
  for (const auto& h : t.hosts) alike = alike && h.size() == mine.size();
  if (t.num_hosts > 1) {
    t.hierarchical = alike && opt_.hierarchical;
    t.flat_ring = !t.hierarchical;
  }
  topo_ = t;
  return topo_;
}

std::string Communicator::shm_name() const {
  return "/unicc-" + opt_.job_id + "-" + std::to_string(topo_.host_index);
}

void Communicator::open_shm(bool create) {
  if (topo_.local_size < 2 || topo_.flat_ring) return;
  std::vector<ShmGroup::Member> members;
  for (int r : topo_.hosts[topo_.host_index]) members.push_back({label(r)});
  const auto how = create ? ShmGroup::Open::Create : ShmGroup::Open::Existing;
  if (opt_.client_lane && topo_.num_hosts == 1)  // pieces such that every request up to small_bytes takes one round
    client_lane_ = std::make_unique<ShmGroup>(shm_name() + "c", how, topo_.local_rank, members,
                                              ceil_div(opt_.small_bytes, members.size()), opt_.timeout_ms);
  shm_ = std::make_unique<ShmGroup>(shm_name(), how, topo_.local_rank, std::move(members), opt_.shm_piece_bytes,
                                    opt_.timeout_ms);
}

void Communicator::unlink_shm() {
  if (shm_) shm_->unlink();
  if (client_lane_) client_lane_->unlink();
}

std::vector<int> Communicator::ring_members(int lr) const {
  std::vector<int> members;
  if (topo_.flat_ring) {
    for (int i = 0; i < opt_.size; ++i) members.push_back(i);
  } else {
    for (const auto& h : topo_.hosts) members.push_back(h[lr]);
  }
  return members;
}

Communicator::Group Communicator::make_group(int lr, MemoryBackend& memory) {
  Group g;
  g.memory = &memory;
  const std::vector<int> members = ring_members(lr);
  g.size = static_cast<int>(members.size());
  g.index = static_cast<int>(std::find(members.begin(), members.end(), opt_.rank) - members.begin());
  g.channels.assign(members.size(), nullptr);
  for (size_t i = 0; i < members.size(); ++i) {
    if (auto shm = shm_channels_.find(members[i]); shm != shm_channels_.end()) {
      g.channels[i] = shm->second.get();
      continue;
    }
    auto it = conns_.find(members[i]);
    if (it == conns_.end() || members[i] == opt_.rank) continue;
    std::vector<Conn*> streams;
    for (int s = 0; s < streams_in_use_; ++s) streams.push_back(it->second.at(s).get());
    g.owned.push_back(std::make_unique<TcpChannel>(std::move(streams)));
    g.channels[i] = g.owned.back().get();
  }
  return g;
}

std::set<int> Communicator::group_peers(const std::vector<int>& members) const {
  const int n = static_cast<int>(members.size());
  const int idx = static_cast<int>(std::find(members.begin(), members.end(), opt_.rank) - members.begin());
  std::set<int> peers{members[(idx + n - 1) % n], members[(idx + 1) % n]};
  for (const Step& s : recursive_doubling_allreduce_schedule(n, idx, 0, 1, 1).steps) peers.insert(members[s.peer]);
  peers.erase(opt_.rank);
  return peers;
}

void Communicator::run(const Group& g, const Schedule& s, const Desc& d, void* buf, DType t, RedOp op, Wire wire) {
  ExecContext cx{d, t, op, wire_for(t, wire), opt_.timeout_ms, [this] { check_abort(); }, label(opt_.rank)};
  cx.memory = g.memory;
  unicc::execute(s, static_cast<char*>(buf), g.channels, cx);
}

Wire Communicator::wire_for(DType t, Wire wire) { return t == DType::F32 ? wire : Wire::Exact; }

size_t Communicator::chunk_elems(size_t block_elems, size_t es) const {
  return pipeline_chunk_elems(opt_.tcp_chunk_bytes, static_cast<size_t>(streams_in_use_), block_elems, es);
}

Schedule Communicator::allreduce_schedule(const Group& g, size_t count, DType t, Wire wire) const {
  const size_t es = dtype_size(t), n = static_cast<size_t>(g.size);
  // Small buffers: log2(n) exchanges instead of the ring's 2(n-1) steps. On a 16-bit wire only
  // where n is a power of two, so that every rank ends with the same rounded values.
  const bool doubling = count * es <= opt_.small_bytes && (t != DType::F32 || wire == Wire::Exact || (n & (n - 1)) == 0);
  return doubling ? recursive_doubling_allreduce_schedule(g.size, g.index, count, es, chunk_elems(count, es))
                  : ring_allreduce_schedule(g.size, g.index, count, es, chunk_elems(ceil_div(count, n), es));
}

void Communicator::group_allreduce(const Group& g, const Desc& d, void* buf, size_t count, DType t, RedOp op,
                                   Wire wire) {
  run(g, allreduce_schedule(g, count, t, wire), d, buf, t, op, wire);
}

void Communicator::group_broadcast(const Group& g, const Desc& d, void* buf, size_t bytes, int root_index) {
  run(g, ring_broadcast_schedule(g.size, g.index, bytes, root_index, chunk_elems(bytes, 1)), d, buf, DType::F32,
      RedOp::Sum, Wire::Exact);
}

void Communicator::group_allgather(const Group& g, const Desc& d, void* out, size_t bytes) {
  const size_t n = static_cast<size_t>(g.size);
  run(g, ring_allgather_schedule(g.size, g.index, n * bytes, 1, chunk_elems(bytes, 1)), d, out, DType::F32,
      RedOp::Sum, Wire::Exact);
}

void Communicator::connect() {
  if (topo_.num_hosts < 2) {
    listener_.reset();  // nobody dials inside one host; a stranger's connection must not wait unanswered
    return;
  }
  const int64_t deadline = now_ms() + opt_.timeout_ms;
  std::set<int> over_tcp, on_this_host;
  for (int q : group_peers(ring_members(topo_.local_rank)))
    (peers_[q].host == peers_[opt_.rank].host ? on_this_host : over_tcp).insert(q);
  // TCP first: its waits end without anybody's shared-memory channels.
  connect_tcp(over_tcp, deadline);
  listener_.reset();  // every neighbour is in: later connections are refused, not left unanswered
  connect_shm(on_this_host, deadline);
}

void Communicator::connect_tcp(const std::set<int>& neighbours, int64_t deadline) {
  const int S = opt_.streams;
  int expected_accepts = 0;
  // The higher rank of each pair dials; the lower accepts. Listeners exist before anyone dials.
  for (int q : neighbours) {
    conns_[q].resize(S);
    if (q > opt_.rank) { expected_accepts += S; continue; }
    for (int s = 0; s < S; ++s) {
      const int fd = connect_peer(peers_[q].addr, peers_[q].port, job_key_, token_key_, opt_.rank, q, s, deadline,
                                  label(q));
      conns_[q][s] = std::make_unique<Conn>(fd, q, label(q));
    }
  }
  while (expected_accepts > 0) {
    int from = -1, stream = -1;
    const int fd = listener_->accept_peer(job_key_, token_key_, opt_.rank, opt_.size, deadline, &from, &stream);
    if (fd < 0) {
      std::string missing;
      for (int q : neighbours)
        if (q < opt_.rank) continue;
        else if (std::any_of(conns_[q].begin(), conns_[q].end(), [](const auto& c) { return !c; }))
          missing += (missing.empty() ? "" : ", ") + std::to_string(q);
      throw CommError(label(opt_.rank) + " waited " + std::to_string(opt_.timeout_ms / 1000) +
                      " s for its neighbours to connect; missing rank(s) " + missing +
                      ". Did they start, and can they reach this host?");
    }
    if (!neighbours.count(from) || stream >= S || conns_[from][stream]) { ::close(fd); continue; }
    conns_[from][stream] = std::make_unique<Conn>(fd, from, label(from));
    --expected_accepts;
  }
}

// Neighbours on this host (the flat ring where hosts differ): every pair's lower rank makes its
// segments, then each rank joins those it is the upper of, then waits for its own to be joined.
void Communicator::connect_shm(const std::set<int>& neighbours, int64_t deadline) {
  for (int q : neighbours) {
    const std::string name = "/unicc-" + opt_.job_id + "-c" + std::to_string(std::min(q, opt_.rank)) + "-" +
                             std::to_string(std::max(q, opt_.rank));
    auto& ch = shm_channels_[q] = std::make_unique<ShmChannel>(name, opt_.rank, q, peers_[q].pid, label(q));
    if (ch->lower()) ch->make();
  }
  for (bool uppers : {true, false})
    for (auto& [q, ch] : shm_channels_)
      if (ch->lower() != uppers) ch->connect(deadline);
}

void Communicator::use_streams(int n) { streams_in_use_ = std::clamp(n, 1, opt_.streams); }

void Communicator::check_abort() {
  if (shm_ && shm_->aborted()) throw CommError(shm_->abort_message());
}

void Communicator::fail(const std::string& msg) {
  failed_ = msg;
  if (shm_) shm_->abort(msg);
  if (client_lane_) client_lane_->abort(msg);
  for (auto& [rank, streams] : conns_)
    for (auto& c : streams)
      if (c) c->send_abort(seq_, msg);
  for (auto& [rank, ch] : shm_channels_) ch->send_abort(seq_, msg);
  throw CommError(msg);
}

void Communicator::allreduce(const Desc& d, Op& op) {
  const size_t es = dtype_size(op.dtype);
  MemoryBackend& memory = memory_of(op);
  if (topo_.flat_ring) {
    group_allreduce(make_group(0, memory), d, op.buf, op.count, op.dtype, op.op, op.wire);
  } else if (topo_.num_hosts == 1) {
    // The average too, piece by piece while in cache (and a client's memory is written once).
    if (shm_) local_allreduce(*shm_, d, UserBuffer(op.buf, op.client_pid), op.count, op.dtype, op.op, opt_.small_bytes,
                              average_divisor(op));
    return;
  } else {
    // Reduce inside the host, one slice per local rank across hosts (all at once), share inside.
    const Partition blocks = host_blocks(op.count);
    if (shm_) local_reduce_scatter(*shm_, d, op.buf, blocks, op.dtype, op.op);
    cross_hosts(d, static_cast<char*>(op.buf), blocks, op.dtype, op.op, op.wire, memory);
    if (shm_) local_allgather_blocks(*shm_, d, op.buf, blocks, es);
  }
  if (op.op == RedOp::Avg) memory.divide(op.buf, op.count, op.dtype, opt_.size);
}

Partition Communicator::host_blocks(size_t count) const {
  return {count, static_cast<size_t>(topo_.local_size), host_split_.empty() ? nullptr : host_split_.data()};
}

void Communicator::cross_hosts(const Desc& d, char* buf, const Partition& blocks, DType t, RedOp op, Wire wire,
                               MemoryBackend& memory) {
  const size_t lr = static_cast<size_t>(topo_.local_rank), bytes = blocks.len(lr) * dtype_size(t);
  const auto t0 = Clock::now();
  group_allreduce(make_group(topo_.local_rank, memory), d, buf + blocks.start(lr) * dtype_size(t), blocks.len(lr), t, op, wire);
  ring_use_.bytes += static_cast<double>(bytes);
  ring_use_.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
}

void Communicator::set_host_split(std::vector<uint32_t> bounds) { host_split_ = std::move(bounds); }

std::vector<Tunable> Communicator::tunables() {
  auto kib = [](const char* what) { return [what](size_t v) { return std::string(what) + std::to_string(v >> 10) + " KiB"; }; };
  Tunable streams{[](size_t v) { return std::to_string(v) + (v == 1 ? " stream" : " streams"); },
                  [this] { return static_cast<size_t>(streams_in_use_); },
                  [this](size_t v) { use_streams(static_cast<int>(v)); }, {}};
  if (topo_.num_hosts > 1)
    for (size_t n : {1, 2, 4, 8})
      if (n < static_cast<size_t>(opt_.streams)) streams.tries.push_back(n);
  std::vector<Tunable> all{std::move(streams)};
  if (pipelines())
    all.push_back({kib("pieces "), [this] { return piece_bytes_; }, [this](size_t v) { set_piece_bytes(v); },
                   {size_t{2} << 20, size_t{8} << 20, size_t{32} << 20}});
  return all;
}

Split Communicator::split() {
  Split s;
  if (!topo_.hierarchical || topo_.num_hosts < 2 || topo_.local_size < 2) return s;
  s.parts = static_cast<size_t>(topo_.local_size);
  std::vector<size_t> local_rank_of(static_cast<size_t>(opt_.size));
  for (const auto& host : topo_.hosts)
    for (size_t l = 0; l < host.size(); ++l) local_rank_of[static_cast<size_t>(host[l])] = l;
  s.part_of = [local_rank_of](int rank) { return local_rank_of[static_cast<size_t>(rank)]; };
  s.take_use = [this] { return std::exchange(ring_use_, {}); };
  s.set_weights = [this](const std::vector<double>& weights) {
    double total = 0;
    for (double w : weights) total += w;
    std::vector<uint32_t> bounds(weights.size() + 1, 0);
    double cumulative = 0;
    for (size_t l = 0; l < weights.size(); ++l) {
      cumulative += weights[l] / total;
      bounds[l + 1] = l + 1 == weights.size() ? kShareUnits : static_cast<uint32_t>(cumulative * kShareUnits);
    }
    set_host_split(std::move(bounds));
  };
  return s;
}

void Communicator::broadcast(const Desc& d, Op& op) {
  const size_t bytes = op.count * dtype_size(op.dtype);
  MemoryBackend& memory = memory_of(op);
  if (topo_.flat_ring) {
    group_broadcast(make_group(0, memory), d, op.buf, bytes, op.root);
    return;
  }
  int root_host = 0, root_lr = 0;
  for (int h = 0; h < topo_.num_hosts; ++h)
    for (size_t l = 0; l < topo_.hosts[h].size(); ++l)
      if (topo_.hosts[h][l] == op.root) { root_host = h; root_lr = static_cast<int>(l); }
  if (topo_.num_hosts > 1 && topo_.local_rank == root_lr) {
    group_broadcast(make_group(root_lr, memory), d, op.buf, bytes, root_host);
  }
  if (shm_) local_broadcast(*shm_, d, UserBuffer(op.buf, op.client_pid), bytes, root_lr);
}

void Communicator::allgather(const Desc& d, Op& op) {
  const size_t bytes = op.count * dtype_size(op.dtype);
  char* out = static_cast<char*>(op.out);
  MemoryBackend& memory = memory_of(op);
  if (topo_.flat_ring) {
    memory.copy(out + opt_.rank * bytes, op.buf, bytes);
    group_allgather(make_group(0, memory), d, out, bytes);
    return;
  }
  if (topo_.num_hosts == 1) {
    if (shm_) local_allgather(*shm_, d, op.buf, out, bytes);
    else memory.copy(out, op.buf, bytes);
    return;
  }
  // Gather the host's block, let local rank 0 of each host exchange blocks, share inside the host
  // (all in host memory, so a buffer the CPU cannot touch crosses to it and back once).
  const size_t L = static_cast<size_t>(topo_.local_size), H = static_cast<size_t>(topo_.num_hosts);
  std::vector<char> all(H * L * bytes);
  char* host_block = all.data() + topo_.host_index * L * bytes;
  if (shm_) local_allgather(*shm_, d, op.buf, host_block, bytes);
  else memory.download(host_block, op.buf, bytes);
  if (topo_.local_rank == 0) {
    group_allgather(make_group(0), d, all.data(), L * bytes);
  }
  if (shm_) local_broadcast(*shm_, d, all.data(), all.size(), 0);
  for (size_t h = 0; h < H; ++h)
    for (size_t l = 0; l < L; ++l)
      memory.upload(out + topo_.hosts[h][l] * bytes, all.data() + (h * L + l) * bytes, bytes);
}

Desc Communicator::describe(const Op& op) {
  Desc d;
  d.seq = seq_++;
  d.coll = static_cast<uint8_t>(op.coll);
  d.dtype = static_cast<uint8_t>(op.dtype);
  d.op = static_cast<uint8_t>(op.op);
  d.root = op.root;
  d.count = op.count;
  return d;
}

int Communicator::average_divisor(const Op& op) const {
  return op.coll == Coll::Allreduce && op.op == RedOp::Avg ? opt_.size : 1;
}

// Where a client's buffer reaches an algorithm that works on a pointer (TCP rings cross hosts),
// it is staged: read whole first, written whole after, by this thread.
bool Communicator::works_on_client_memory(const Op& op) const {
  return shm_ && topo_.num_hosts == 1 && !topo_.flat_ring && (op.coll == Coll::Allreduce || op.coll == Coll::Broadcast);
}

void Communicator::execute_staged(Op& op) {
  const size_t bytes = op.count * dtype_size(op.dtype);
  const UserBuffer client(op.buf, op.client_pid);
  std::vector<char> stage(bytes);
  client.read(0, stage.data(), bytes);
  Op here = op;
  here.buf = stage.data();
  here.client_pid = 0;
  execute(here);
  if (buffer_takes_result(op)) client.write(0, stage.data(), bytes);
}

// Where ranks share a host, a buffer the CPU cannot touch crosses to host memory and back whole,
// and the collective runs there (CUDA IPC would keep it on the devices).
void Communicator::execute_through_host(Op& op) {
  MemoryBackend& memory = *op.memory;
  const size_t bytes = op.count * dtype_size(op.dtype);
  std::vector<char> stage(bytes), gathered(op.coll == Coll::Allgather ? bytes * opt_.size : 0);
  memory.download(stage.data(), op.buf, bytes);
  Op here = op;
  here.memory = nullptr;
  here.buf = stage.data();
  here.out = gathered.data();
  execute(here);
  if (op.coll == Coll::Allgather) memory.upload(op.out, gathered.data(), gathered.size());
  else if (buffer_takes_result(op)) memory.upload(op.buf, stage.data(), bytes);
}

void Communicator::execute(Op& op) {
  if (shm_ && !memory_of(op).host_addressable() && op.coll != Coll::Barrier) return execute_through_host(op);
  if (op.client_pid && !works_on_client_memory(op) && opt_.size > 1) return execute_staged(op);
  const Desc d = describe(op);
  if (opt_.size == 1) {
    if (op.coll == Coll::Allgather) memory_of(op).copy(op.out, op.buf, op.count * dtype_size(op.dtype));
    return;
  }
  switch (op.coll) {
    case Coll::Allreduce: return allreduce(d, op);
    case Coll::Broadcast: return broadcast(d, op);
    case Coll::Allgather: return allgather(d, op);
    case Coll::Barrier: {
      if (shm_) local_barrier(*shm_, d);
      if (topo_.num_hosts > 1) {
        // A zero-byte ring allgather completes on a rank only after every rank has joined; local
        // rank 0 stands for its host, and the host's second barrier waits for it.
        if (topo_.flat_ring || topo_.local_rank == 0) {
          group_allgather(make_group(0), d, nullptr, 0);
        }
        if (shm_) local_barrier(*shm_, d);
      }
      return;
    }
  }
}

void Communicator::run_inline(Op& op) {
  if (!failed_.empty()) throw CommError(failed_);
  try {
    execute(op);
  } catch (const CommError& e) {
    fail(e.what());
  }
}

void Communicator::run_inline_many(const std::vector<Op*>& ops) {
  if (!failed_.empty()) throw CommError(failed_);
  const bool pipeline = !ops.empty() && topo_.num_hosts > 1;
  if (!pipeline) {
    for (Op* op : ops) run_inline(*op);
    return;
  }
  try {
    pipelined_allreduces(ops);
  } catch (const CommError& e) {
    fail(e.what());
  }
}

void Communicator::submit(Op op) {
  auto shared = std::make_shared<Op>(std::move(op));
  run_async([this, shared] { execute(*shared); }, [shared](const std::string& err) { shared->done(err); });
}

void Communicator::run_async(std::function<void()> fn, std::function<void(const std::string&)> done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back({std::move(fn), std::move(done)});
  }
  cv_.notify_one();
}

void Communicator::submit_or_run(Op op) {
  if (!claim_lane()) return submit(std::move(op));
  // Done before this returns: the task may refer to the op here (no allocation on this path).
  Task task{[this, &op] { execute(op); }, [&op](const std::string& err) { op.done(err); }};
  run_task(task);
  release_lane();
}

bool Communicator::claim_lane() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!queue_.empty() || running_ || stopping_) return false;
  running_ = true;
  return true;
}

void Communicator::release_lane() {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    wake = !queue_.empty() || stopping_;
  }
  // The worker (and close()) wait for running_ to clear before they take what queued meanwhile;
  // with nothing queued, waking the worker would only cost it a pointless trip (a context switch).
  if (wake) cv_.notify_all();
}

bool Communicator::one_local_round(const Op& op) const {
  if (!shm_ || topo_.num_hosts != 1) return false;
  if (op.coll == Coll::Barrier) return true;
  return op.coll == Coll::Allreduce && memory_of(op).host_addressable() &&
         local_small(*shm_, op.count * dtype_size(op.dtype), opt_.small_bytes);
}

void Communicator::finish_local_round(Op& op, uint64_t round) {
  local_small_finish(*shm_, round, op.buf, op.count, op.dtype, op.op, average_divisor(op));
}

bool Communicator::submit_eager(Op op) {
  if (!one_local_round(op) || !claim_lane()) {
    submit(std::move(op));
    return false;
  }
  auto shared = std::make_shared<Op>(std::move(op));
  std::function<void()> rest;  // what this communicator's thread is left to do, if anything
  Task here{[&] {
              if (!shm_->round_free()) {
                rest = [this, shared] { execute(*shared); };
                return;
              }
              const size_t bytes = shared->count * dtype_size(shared->dtype);
              const uint64_t R = local_small_start(*shm_, describe(*shared), shared->buf, bytes);
              if (shm_->arrived(R, ShmGroup::IN, kEagerNs)) finish_local_round(*shared, R);
              else rest = [this, shared, R] { finish_local_round(*shared, R); };
            },
            [&](const std::string& err) {
              if (!rest) shared->done(err);
            }};
  run_task(here);
  if (!rest) {
    release_lane();
    return true;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_front({std::move(rest), [shared](const std::string& err) { shared->done(err); }});
  }
  release_lane();
  return false;
}

std::string Communicator::attempt(const std::function<void()>& fn) {
  if (!failed_.empty()) return failed_;
  try {
    fn();
  } catch (const std::exception& e) {
    // Pass the first cause on to everybody who may be waiting on us.
    try { fail(e.what()); } catch (const CommError&) {}
    return e.what();
  }
  return "";
}

void Communicator::run_task(Task& task) { task.done(attempt(task.fn)); }

void Communicator::worker() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return (stopping_ || !queue_.empty()) && !running_; });
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
      running_ = true;
    }
    const std::string error = attempt(task.fn);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
    }
    // Only now: the caller this completion wakes finds the lane free and runs its next small
    // collective itself, instead of queueing it behind this thread (a chain of hand-offs that
    // costs tens of microseconds each where ranks share cores).
    task.done(error);
  }
}

void Communicator::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    // A submit_or_run caller may still be in its collective: the connections are its until it ends.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !running_; });
  }
  conns_.clear();
  shm_channels_.clear();
  listener_.reset();
  shm_.reset();
}

}  // namespace unicc
