#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace unicc {

// Names some ranks submitted and others did not, reported once each when that has lasted
// `warn_s` seconds (a rank skipped a gradient, or is much slower).
class StallReport {
 public:
  StallReport(int size, int warn_s) : size_(size), warn_s_(warn_s) {}
  // From one round: each name some ranks hold, with the ranks that hold it (ascending); a name
  // missing from `partly_held` is held by every rank or none. Returns the report to print, or "".
  std::string update(const std::map<std::string, std::vector<int>>& partly_held, int64_t now_ms);

 private:
  int size_, warn_s_;
  std::map<std::string, int64_t> since_ms_;  // names partly held, from when
  std::map<std::string, bool> reported_;
};

}  // namespace unicc
