#include "engine/stall_report.h"

namespace unicc {

namespace {
constexpr int kMostListed = 8;
}

std::string StallReport::update(const std::map<std::string, std::vector<int>>& partly_held, int64_t now_ms) {
  for (auto it = since_ms_.begin(); it != since_ms_.end();) {
    if (partly_held.count(it->first)) {
      ++it;
      continue;
    }
    reported_.erase(it->first);
    it = since_ms_.erase(it);
  }
  std::string report;
  int listed = 0;
  for (const auto& [name, ranks] : partly_held) {
    const int64_t since = since_ms_.emplace(name, now_ms).first->second;
    if (now_ms - since < int64_t{warn_s_} * 1000 || reported_[name]) continue;
    reported_[name] = true;
    if (++listed > kMostListed) continue;
    std::string missing;
    for (int r = 0, i = 0; r < size_; ++r) {
      if (i < static_cast<int>(ranks.size()) && ranks[i] == r) {
        ++i;
        continue;
      }
      missing += (missing.empty() ? "" : ",") + std::to_string(r);
    }
    report += "\n  '" + name + "' missing on ranks " + missing;
  }
  if (listed > kMostListed) report += "\n  ... and " + std::to_string(listed - kMostListed) + " more";
  if (report.empty()) return "";
  return "stall: for over " + std::to_string(warn_s_) +
         " s some ranks submitted these tensors and others did not (a rank skipped a gradient, or is much slower):" + report;
}

}  // namespace unicc
