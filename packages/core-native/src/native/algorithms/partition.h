#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace unicc {

// Shares of a weighted split are counted in units of 1/kShareUnits.
constexpr uint32_t kShareUnits = 1 << 16;

// Splits `count` elements into `parts` contiguous blocks: sizes differ by at most one, or, given
// `bounds` (parts + 1 cumulative shares from 0 to kShareUnits), in proportion to the shares.
struct Partition {
  size_t count;
  size_t parts;
  const uint32_t* bounds = nullptr;
  size_t start(size_t i) const {
    if (bounds) return static_cast<size_t>(static_cast<uint64_t>(count) * bounds[i] / kShareUnits);
    return i * (count / parts) + std::min(i, count % parts);
  }
  size_t len(size_t i) const { return start(i + 1) - start(i); }
  size_t longest() const {
    size_t most = 0;
    for (size_t i = 0; i < parts; ++i) most = std::max(most, len(i));
    return most;
  }
};

inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

}  // namespace unicc
