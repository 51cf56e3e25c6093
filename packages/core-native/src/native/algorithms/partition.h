#pragma once
#include <algorithm>
#include <cstddef>

namespace unicc {

// Splits `count` elements into `parts` contiguous blocks whose sizes differ by at most one.
struct Partition {
  size_t count;
  size_t parts;
  size_t start(size_t i) const { return i * (count / parts) + std::min(i, count % parts); }
  size_t len(size_t i) const { return count / parts + (i < count % parts ? 1 : 0); }
};

inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

}  // namespace unicc
