#pragma once
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace unicc {

// Chrome trace ("Trace Event Format") of the engine's work, one file per rank: each tensor is a
// row (tid) of this rank's process (pid), each phase a complete event. Events go to disk as they
// happen, so a job that dies still leaves a readable trace (the viewers accept a missing "]").
class Timeline {
 public:
  Timeline(const std::string& path, int rank);
  ~Timeline();
  bool enabled() const { return f_ != nullptr; }
  // Names the row `row` once; later events on it show under that name.
  void name_row(int row, const std::string& name);
  void span(int row, const char* phase, int64_t start_us, int64_t end_us, const std::string& args_json = "");

 private:
  std::FILE* f_ = nullptr;
  int rank_;
  bool first_ = true;
  std::mutex mu_;
};

int64_t now_us();

}  // namespace unicc
