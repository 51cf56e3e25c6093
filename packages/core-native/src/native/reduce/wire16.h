#pragma once
#include <cstddef>
#include <cstdint>

#include "reduce/reduce.h"

namespace unicc {

// How float32 values travel between hosts: exactly, or in 16 bits (IEEE half or bfloat16) and
// summed back in float32 by the receiver.
enum class Wire : uint8_t { Exact = 0, F16 = 1, BF16 = 2 };

const char* wire_name(Wire w);

// A 16-bit message of n values: a float32 scale, then n 16-bit codes (value = code / scale).
// The scale is a power of two picked from the largest finite magnitude, so that large values
// do not overflow half precision and small ones keep their significant bits; Inf and NaN pass.
inline size_t wire16_bytes(size_t n) { return 4 + 2 * n; }

void wire16_encode(Wire w, const float* src, size_t n, void* msg);
// Nanoseconds this thread has spent encoding and decoding so far (for the engine's timeline).
int64_t wire16_thread_ns();
// dst = decoded values, or dst = dst op decoded values when accumulate.
void wire16_decode(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op);

}  // namespace unicc
