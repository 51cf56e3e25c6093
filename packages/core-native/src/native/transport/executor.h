#pragma once
#include <functional>
#include <string>
#include <vector>

#include "algorithms/schedule.h"
#include "common/collective.h"
#include "memory/backend.h"
#include "reduce/wire16.h"
#include "transport/channel.h"

namespace unicc {

// How one rank runs its part of a collective, whatever the algorithm.
struct ExecContext {
  const Desc& desc;  // checked against every frame that arrives
  DType dtype;
  RedOp op;
  Wire wire;  // Wire::Exact unless dtype is float32
  int timeout_ms;
  std::function<void()> check_abort;  // called while waiting, so a failure seen elsewhere stops us
  std::string self_label;
  // Gated steps (Step::gate) wait until gate_open(gate) (none given: every gate is open); whoever opens a gate makes wake_fd
  // readable (an eventfd the executor drains) so that the run does not sleep through it.
  std::function<bool(int32_t gate)> gate_open = {};
  int wake_fd = -1;
  std::function<void(int32_t step)> on_done = {};  // each step as it completes, for pipelining
  MemoryBackend* memory = &host_backend();         // where the buffers live
  std::vector<MemoryBackend*> buffer_memory = {};  // or, where they differ, where each one lives (by buffer)
};

// Runs schedule s over buf: every step as soon as its dependencies are done, all peers and lanes
// at once in one wait loop. An idle lane takes the peer's earliest send that is ready (so a lane
// the network serves faster carries more, and a send still waiting does not hold up later ones
// that could go); every message travels as a frame naming the
// collective and its place among the pair's messages, so lanes may deliver in any order; one that
// arrives before its receive may touch the buffer is held aside. peers[r]: the channel to group
// rank r (only those the schedule names are used). Throws CommError naming the peer at fault.
void execute(const Schedule& s, char* buf, const std::vector<Channel*>& peers, const ExecContext& cx);
// The same over several buffers: a step's offset is in bufs[step.buffer].
void execute(const Schedule& s, const std::vector<char*>& bufs, const std::vector<Channel*>& peers,
             const ExecContext& cx);

}  // namespace unicc
