#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace unicc {

// One thread kept for work that runs beside the communicator's own, one job at a time (the host's
// side of a pipelined batch), so that a batch does not pay for starting and joining a thread.
class SideWorker {
 public:
  SideWorker() = default;
  SideWorker(const SideWorker&) = delete;
  SideWorker& operator=(const SideWorker&) = delete;
  ~SideWorker();

  // Runs job on the thread (started on first use); the previous job must have been joined.
  void start(std::function<void()> job);
  // Waits until the job has returned.
  void join();

 private:
  void loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::function<void()> job_;
  bool busy_ = false, stopping_ = false;
  std::thread thread_;
};

}  // namespace unicc
