#pragma once
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "communicator.h"
#include "engine/timeline.h"
#include "engine/tuner.h"
#include "reduce/wire16.h"

namespace unicc {

struct EngineOptions {
  size_t fusion_bytes = 64 << 20;  // 0: every tensor travels alone
  int cycle_ms = 1;                // pause between negotiation rounds while tensors wait
  int stall_warn_s = 60;           // report tensors some ranks submitted and others did not
  std::string timeline_path;       // Chrome trace of this rank's requests; empty: none
  bool autotune = false;           // measure stream counts and fusion sizes in the first steps, keep the best
  // Where ranks share hosts, each local rank's block of an allreduce crosses hosts on its own ring.
  bool balance_rings = true;        // the blocks follow the rings' measured rates
  std::vector<double> host_shares;  // or are pinned to these weights, one per local rank
};

// A named allreduce handed to the engine; it completes once every rank has submitted the name.
struct NamedRequest {
  std::string name;
  DType dtype = DType::F32;
  RedOp op = RedOp::Sum;
  Wire wire = Wire::Exact;
  void* buf = nullptr;
  size_t count = 0;
  std::function<void(const std::string& error)> done;
};

// Allreduces named tensors in whatever order ranks submit them. The engine owns a communicator of
// its own and runs on that communicator's thread: in rounds, every rank shares which names it
// holds (a bitmap over names agreed earlier, the full description only for new ones), then all
// ranks reduce the names everybody holds, packed into fusion buffers, in one agreed order.
// No rank coordinates; every rank computes the same decision from the same shared data.
class Engine {
 public:
  Engine(Communicator& comm, EngineOptions o);
  ~Engine();
  void submit(NamedRequest r);
  // Collective: returns once every rank asked to stop and the work they all submitted is done.
  void shutdown();
  // Not collective: leaves after the current round; the peers see this rank as lost.
  void abandon();
  // What the tuner settled on (or the fixed settings), for logs and tests.
  std::string settings() const;
  bool tuning() const;

 private:
  struct Meta {
    std::string name;
    DType dtype;
    RedOp op;
    Wire wire;
    uint64_t count;
    bool operator==(const Meta& o) const {
      return dtype == o.dtype && op == o.op && wire == o.wire && count == o.count;
    }
    std::string str() const;
    static Meta of(const NamedRequest& r) { return {r.name, r.dtype, r.op, r.wire, r.count}; }
  };
  struct Pending {
    NamedRequest req;
    int64_t submitted_us;
    int id = -1;  // agreed id, once every rank has described the name
  };
  struct Round;

  void loop();
  bool run_round(bool stopping, bool* all_stopping);
  void execute(const std::vector<int>& ready_ids);
  void reduce_groups(const std::vector<std::vector<Pending*>>& groups);
  void fail_all(const std::string& error);
  void finish();
  void report_stalls(const Round& round);
  void tune(size_t bytes, int64_t took_us, int reductions);
  void measure_rings(size_t batch_bytes);
  void rebalance(const Round& round);
  void set_shares(std::vector<double> weights);
  std::string label() const;

  Communicator& comm_;
  EngineOptions opt_;
  Timeline timeline_;
  int rank_, size_;

  // Shared with submitting threads.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<NamedRequest> inbox_;
  bool stop_requested_ = false;
  bool abandoned_ = false;
  bool finished_ = false;
  std::string failed_;

  // Engine thread only.
  std::map<std::string, Pending> pending_;  // by name
  std::vector<Meta> agreed_;                // by id: names every rank described identically
  std::map<std::string, int> id_of_;
  std::map<std::string, int64_t> stalled_since_ms_;
  std::map<std::string, bool> stall_reported_;
  std::vector<char> fusion_;
  bool everyone_holding_ = false;  // in the last round, every rank had tensors waiting

  // Tuner: every rank times the same fused reductions and the ranks agree through the rounds.
  // Tunables in order: the stream count (where ranks talk TCP), the fusion size, and where a batch
  // pipelines across hosts (Communicator::pipelines) the size of its pieces.
  void register_tunables();
  void next_candidate(double rate);
  Tuner tuner_;
  double candidate_seconds_ = 0, candidate_bytes_ = 0;
  int tuner_reductions_ = 0;
  double my_rate_report_ = -1;  // this rank's measured rate for the finished candidate, sent next round

  // Ring balance: each local rank's block of an allreduce crosses hosts on its own ring, and
  // the rings get unequal shares of the network (per-flow limits hit some streams harder than
  // others). Every rank reports its ring rate over a window; all move the split the same way.
  bool balancing_ = false;
  std::vector<double> shares_;  // by local rank; empty where allreduces are not split
  double ring_window_bytes_ = 0, ring_bytes_ = 0, ring_seconds_ = 0;
  double my_ring_rate_report_ = -1;
};

}  // namespace unicc
