#pragma once
// A rendezvous store in this process's memory, for ranks that are threads of one test.
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "common/error.h"
#include "world/store.h"

namespace unicc::test {

class MemoryStore final : public RendezvousStore {
 public:
  void set(const std::string& key, const std::string& value) override {
    std::lock_guard<std::mutex> lock(mu_);
    values_[key] = value;
    cv_.notify_all();
  }
  std::string get(const std::string& key, int timeout_ms) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return values_.count(key) > 0; }))
      throw CommError("no rank set '" + key + "' within " + std::to_string(timeout_ms) + " ms");
    return values_[key];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> values_;
};

}  // namespace unicc::test
