#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "algorithms/partition.h"
#include "algorithms/schedule.h"
#include "common/collective.h"
#include "common/side_worker.h"
#include "common/tunable.h"
#include "memory/backend.h"
#include "transport/shm_channel.h"
#include "transport/shm_group.h"
#include "transport/tcp.h"
#include "transport/tcp_channel.h"
#include "reduce/wire16.h"

namespace unicc {

struct PeerInfo {
  std::string host;  // host identity: ranks with the same one share memory
  std::string addr;  // where its listener is
  int port = 0;
  int pid = 0;
};

struct Options {
  int rank = 0;
  int size = 1;
  std::string job_id;
  std::string token;  // UNICC_JOB_TOKEN: ranks prove it to each other on every connection
  int timeout_ms = 30000;
  size_t shm_piece_bytes = 128 << 10;
  size_t small_bytes = 64 << 10;
  size_t tcp_chunk_bytes = 1 << 20;
  bool hierarchical = true;  // false: one flat TCP ring even where hosts could share memory
  int streams = 1;           // TCP connections to each ring neighbour on another host
  // One host: also make a group for the clients of a bridge (Python processes) to run requests up
  // to small_bytes themselves, with no hop to the bridge (binding/client_lane.cc).
  bool client_lane = false;
};

struct Topology {
  int local_rank = 0;
  int local_size = 1;
  int host_index = 0;
  int num_hosts = 1;
  std::vector<std::vector<int>> hosts;  // global ranks of each host, in rank order
  bool hierarchical = false;            // hosts alike: shared memory inside, one ring per local rank across
  bool flat_ring = false;               // hosts differ (or forced): every rank in one TCP ring
  bool shares_memory() const { return local_size > 1 && !flat_ring; }  // a shared-memory group inside the host
};

struct Op {
  Coll coll = Coll::Barrier;
  DType dtype = DType::F32;
  RedOp op = RedOp::Sum;
  void* buf = nullptr;  // in place; allgather: this rank's input
  int client_pid = 0;   // allreduce, broadcast: buf is an address in this process (the bridge's client), not ours
  void* out = nullptr;  // allgather output (size * count elements)
  size_t count = 0;
  int root = 0;
  Wire wire = Wire::Exact;  // allreduce of float32: how values cross hosts
  // Where buf and out live (a GPU's memory: a CUDA backend); null: this process's host memory.
  // Memory the CPU cannot touch stays there where TCP schedules carry the collective (a rank per
  // host, or the flat ring); ranks sharing a host stage it through host memory whole. A bridge
  // client's buffer (client_pid) is host memory.
  MemoryBackend* memory = nullptr;
  std::function<void(const std::string& error)> done;  // empty error: success
};

// One rank's view of the job: topology, transports, and the thread all communication runs on.
// Collectives execute in submission order, which must be the same on every rank.
class Communicator {
 public:
  explicit Communicator(Options o);
  ~Communicator();

  const Options& options() const { return opt_; }
  const Topology& topology() const { return topo_; }
  const std::vector<PeerInfo>& peers() const { return peers_; }

  int listen(const std::string& addr);
  // Takes every rank's PeerInfo (indexed by rank) and decides the algorithms and transports.
  const Topology& set_peers(std::vector<PeerInfo> peers);
  std::string shm_name() const;
  void open_shm(bool create);
  void unlink_shm();
  // The clients' group (Options::client_lane, one host, two or more local ranks), else null.
  const ShmGroup* client_lane() const { return client_lane_.get(); }
  // Dials and accepts the TCP connections the algorithms need, and joins the shared-memory
  // channels to neighbours on this host (blocking; run it off the JS thread).
  void connect();

  // The settings a tuner may move, in the order to try them: how many of the streams to each
  // neighbour the collectives use (where ranks talk TCP across hosts), and the size of the pieces
  // run_inline_many cuts batches into where it pipelines them. Set between collectives, at the
  // same point on every rank.
  std::vector<Tunable> tunables();
  // Where ranks share hosts and cross them hierarchically, each allreduce is split into one block
  // per local rank, and local rank l's block crosses hosts on its own ring: the parts are the
  // rings, the weights the blocks' shares. parts is 0 elsewhere.
  Split split();

  void submit(Op op);
  // As submit, but when nothing is queued or running, op runs now on the calling thread (which
  // then waits for the collective) instead of waking this communicator's thread: one thread
  // hand-off less for a caller that has nothing else to do meanwhile (the command ring's thread).
  // Order is kept: op runs here only after everything submitted before it finished.
  void submit_or_run(Op op);
  // For a caller that must not block for long (a promise call on the JavaScript thread): as
  // submit_or_run, except that only a one-round collective inside one host (a small allreduce, a
  // barrier) starts here, and it finishes here only if every peer joins within a few
  // microseconds; otherwise this communicator's thread finishes it. Returns whether it finished
  // here (op.done has then run on the calling thread).
  bool submit_eager(Op op);
  // Runs op now on the calling thread, which must be this communicator's own (a task of
  // run_async); a failure is passed on to the peers and thrown.
  void run_inline(Op& op);
  // Allreduces, run like run_inline one after the other, except across hosts (pipelined.cc): with
  // shared memory inside (hierarchical) a kept second thread reduces every piece inside the host,
  // then shares each one inside the host once it has crossed hosts; this thread carries all the
  // pieces across hosts in one schedule, each as soon as it is reduced. With one rank per host, or
  // on the flat ring, that schedule carries the whole allreduces: the ring never drains between them.
  // An op may be in a backend's memory (Op::memory): it stays there where the batch has no host's
  // side, and crosses to host memory and back whole where it has one.
  void run_inline_many(const std::vector<Op*>& ops);
  void run_async(std::function<void()> fn, std::function<void(const std::string&)> done);
  // Finishes queued work, then stops the thread and releases sockets and memory.
  void close();

 private:
  struct Task {
    std::function<void()> fn;
    std::function<void(const std::string&)> done;
  };
  void worker();
  void use_streams(int n);
  void connect_tcp(const std::set<int>& neighbours, int64_t deadline);
  void connect_shm(const std::set<int>& neighbours, int64_t deadline);
  // Whether run_inline_many pipelines batches (across hosts, shared memory inside).
  bool pipelines() const { return topo_.hierarchical && topo_.local_size > 1; }
  void set_piece_bytes(size_t bytes) { piece_bytes_ = std::max<size_t>(bytes, 64 << 10); }
  // `bounds`: local_size + 1 cumulative shares of kShareUnits (empty: equal blocks).
  void set_host_split(std::vector<uint32_t> bounds);
  // Takes the lane for a task run outside the worker (submit_or_run, submit_eager) when nothing is
  // queued or running; release_lane() gives it back.
  bool claim_lane();
  // Ends a task run outside the worker: clears running_.
  void release_lane();
  // Runs fn unless this communicator failed; its failure text ("" if none), passed on to the peers.
  std::string attempt(const std::function<void()>& fn);
  // Runs one task and its completion.
  void run_task(Task& task);
  // The request every rank checks against its peers; numbers it in the sequence of collectives.
  Desc describe(const Op& op);
  void execute(Op& op);
  // What an allreduce's sums are divided by inside one host (the rank count for Avg, else 1).
  int average_divisor(const Op& op) const;
  bool works_on_client_memory(const Op& op) const;
  void execute_staged(Op& op);
  void execute_through_host(Op& op);
  // Whether a staged buffer is written back: all but a broadcast's root, whose data it is.
  bool buffer_takes_result(const Op& op) const { return op.coll != Coll::Broadcast || op.root != opt_.rank; }
  // Whether op is one round inside this host (local_small_start / local_small_finish).
  bool one_local_round(const Op& op) const;
  void finish_local_round(Op& op, uint64_t round);
  void allreduce(const Desc& d, Op& op);
  void pipelined_allreduces(const std::vector<Op*>& ops);
  void pipelined_through_host(const std::vector<Op*>& ops);
  void broadcast(const Desc& d, Op& op);
  void allgather(const Desc& d, Op& op);
  [[noreturn]] void fail(const std::string& msg);
  void check_abort();
  std::string label(int rank) const;
  // The ring a rank of local rank lr joins: same-local-rank ranks of every host, or everybody.
  std::vector<int> ring_members(int lr) const;
  // Those ranks as a group that runs schedules over TCP channels (streams_in_use_ each).
  struct Group {
    int size = 1;
    int index = 0;                                     // mine
    std::vector<std::unique_ptr<TcpChannel>> owned;    // to the members this rank is connected to
    std::vector<Channel*> channels;                    // by group index; null where none
    MemoryBackend* memory = &host_backend();           // where the buffers its schedules run on live
  };
  Group make_group(int lr, MemoryBackend& memory = host_backend());
  // Members this rank of the group exchanges with in some schedule (ring neighbours, and the
  // partners of recursive doubling).
  std::set<int> group_peers(const std::vector<int>& members) const;
  void run(const Group& g, const Schedule& s, const Desc& d, void* buf, DType t, RedOp op, Wire wire);
  size_t chunk_elems(size_t block_elems, size_t es) const;
  static Wire wire_for(DType t, Wire wire);  // 16-bit wires code float32 only
  Schedule allreduce_schedule(const Group& g, size_t count, DType t, Wire wire) const;
  void group_allreduce(const Group& g, const Desc& d, void* buf, size_t count, DType t, RedOp op, Wire wire);
  void group_broadcast(const Group& g, const Desc& d, void* buf, size_t bytes, int root_index);
  // out holds g.size blocks of `bytes` in group order; block g.index must already hold my data.
  void group_allgather(const Group& g, const Desc& d, void* out, size_t bytes);
  Partition host_blocks(size_t count) const;
  // Runs this rank's cross-host ring over its block of a host-reduced buffer, timed into ring_use_.
  void cross_hosts(const Desc& d, char* buf, const Partition& blocks, DType t, RedOp op, Wire wire, MemoryBackend& memory);
  static MemoryBackend& memory_of(const Op& op) { return op.memory ? *op.memory : host_backend(); }

  Options opt_;
  Topology topo_;
  std::vector<PeerInfo> peers_;
  uint64_t job_key_;
  SipKey token_key_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<ShmGroup> shm_;
  std::unique_ptr<ShmGroup> client_lane_;  // made and held for the clients; this process never runs rounds on it
  std::map<int, std::vector<std::unique_ptr<Conn>>> conns_;  // by neighbour rank, one per stream
  std::map<int, std::unique_ptr<ShmChannel>> shm_channels_;  // neighbours on this host, by rank (flat ring)
  int streams_in_use_ = 1;
  std::vector<uint32_t> host_split_;
  Split::Use ring_use_;  // what this rank's cross-host ring carried, and how long it took, since split().take_use
  uint32_t seq_ = 0;
  std::string failed_;
  // Pieces small enough that the pipeline fills quickly (the first cannot cross before the host
  // has reduced it), large enough that each shared-memory step pays off; the tuner may move it.
  size_t piece_bytes_ = 8 << 20;
  SideWorker host_side_;  // the host's side of pipelined batches
  int wake_fd_ = -1;      // eventfd: a piece is reduced inside the host and may cross hosts

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  bool running_ = false;  // a task runs (on thread_ or on a submit_or_run caller); guarded by mu_
  std::thread thread_;
};

}  // namespace unicc
