#pragma once
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "communicator.h"
#include "engine/balance.h"
#include "engine/fusion.h"
#include "engine/negotiation.h"
#include "engine/stall_report.h"
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
  // Where buf lives (a GPU's memory: a CUDA backend; it must outlive the request); null: this
  // process's host memory. Ranks may differ in it.
  MemoryBackend* memory = nullptr;
  std::function<void(const std::string& error)> done;
};

// Allreduces named tensors in whatever order ranks submit them. The engine owns a communicator of
// its own and runs on that communicator's thread: in rounds, every rank shares which names it
// holds (negotiation.h), then all ranks reduce the names everybody holds, packed into fusion
// buffers (fusion.h), in one agreed order. No rank coordinates; every rank computes the same
// decision from the same shared data. The rounds also carry the tuner's and the ring balance's
// measurements (tuner.h, balance.h) and show tensors that some ranks hold for long and others do
// not (stall_report.h).
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
  struct Pending {
    NamedRequest req;
    int64_t submitted_us;
    int id = -1;  // agreed id, once every rank has described the name
    TensorMeta meta() const { return {req.name, req.dtype, req.op, req.wire, req.count}; }
  };

  void loop();
  bool run_round(bool stopping, bool* all_stopping);
  Round exchange(bool stopping);
  void execute(const std::vector<int>& ready_ids);
  void reduce_groups(const std::vector<std::vector<Pending*>>& groups);
  void fail_all(const std::string& error);
  bool fail_lacked_by_closing(const Round& round, std::map<std::string, std::vector<int>>& partly);
  void finish();
  void tune(size_t bytes, int64_t took_us, int reductions);
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
  Negotiation negotiation_;
  StallReport stalls_;
  FusionBuffer fusion_;
  bool everyone_holding_ = false;  // in the last round, every rank had tensors waiting

  // Tuner: every rank times the same fused reductions and the ranks agree through the rounds.
  // Tunables: the communicator's (stream count, pipeline pieces), then the fusion size.
  void next_candidate(double rate);
  Tuner tuner_;
  double candidate_seconds_ = 0, candidate_bytes_ = 0;
  int tuner_reductions_ = 0, tuner_batches_ = 0;
  bool tuner_warm_ = false;  // the first window was left out
  // The batches of the window being measured, and of the last one: what a fusion size could change.
  std::vector<std::vector<FusionInput>> window_batches_, measured_batches_;
  bool fusion_matters(size_t fusion_bytes, size_t base) const;
  double my_rate_report_ = -1;  // this rank's measured rate for the finished candidate, sent next round

  // Ring balance: every rank reports its ring's rate over a window; all move the split the same way.
  Balancer balancer_;
  double my_ring_rate_report_ = -1;
};

}  // namespace unicc
