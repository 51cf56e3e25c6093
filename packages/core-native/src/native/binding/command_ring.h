// The bridge's end of a client's command ring (ring_format.h): a thread that sleeps on the
// submission counter's futex, decodes each submission, checks it against the buffers the client
// mapped and hands it straight to the core: it runs an unnamed collective itself when the core's
// lane is idle (Communicator::submit_or_run; one thread wake-up less per request), else queues it,
// and hands named ones to the engine. Whichever thread ran it writes the completion and wakes the
// client's waiting threads. No JavaScript and no socket on this path: the socket stays for
// setup, mapping and failure.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "binding/ring_format.h"
#include "binding/shared_memory.h"
#include "communicator.h"
#include "engine/engine.h"

namespace unicc {

struct RingTargets {
  std::function<void(Op)> submit;                  // calls in program order (the first lane; may run op)
  std::function<void(NamedRequest)> submit_named;  // the engine
  int size = 1;                                    // ranks, for allgather's output
  Wire default_wire = Wire::Exact;                 // UNICC_COMPRESSION
  std::string who;                                 // "the bridge of rank R", for messages
  int client_pid = 0;                              // cross-memory attach to the client works (0: refused)
  std::function<void(const std::string&)> fatal;   // the client broke the ring: drop it (any thread)
};

class CommandRing {
 public:
  // Checks the ring file's header (throws std::runtime_error) and starts the thread.
  CommandRing(std::shared_ptr<Mapping> ring, RingTargets targets);
  ~CommandRing();

  void add_buffer(uint64_t id, std::shared_ptr<Mapping> m);
  bool remove_buffer(uint64_t id);
  // Takes what the client submitted so far, then stops (without waiting for the thread); `drained` runs (on some thread) once
  // every request taken has completed.
  void stop(std::function<void()> drained);
  // Stops at once (the world is closing under us): requests still in flight complete as the core fails them.
  void halt();

 private:
  struct State;
  void run();
  bool take_all();
  void take(const uint8_t* entry);
  std::string client_memory_error(const ring::Submission& s, size_t elem) const;
  void hand_over(const std::function<void()>& submit, uint64_t req);
  std::shared_ptr<Mapping> buffer(uint64_t id);

  std::shared_ptr<State> state_;
  RingTargets targets_;
  std::mutex buffers_mu_;
  std::map<uint64_t, std::shared_ptr<Mapping>> buffers_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace unicc
