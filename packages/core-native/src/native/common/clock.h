#pragma once
#include <chrono>
#include <cstdint>

namespace unicc {

using Clock = std::chrono::steady_clock;

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}

}  // namespace unicc
