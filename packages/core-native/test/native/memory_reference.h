#pragma once
// References for the memory backends' tests, written independently of reduce/ and wire16.cc:
// plain loops, and a 16-bit encoder that picks each code by comparing the two candidates.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc::testref {

template <typename T>
T apply(T x, T y, RedOp op) {
  using U = std::conditional_t<std::is_integral_v<T>, std::make_unsigned_t<std::conditional_t<std::is_integral_v<T>, T, int>>, T>;
  switch (op) {
    case RedOp::Sum: case RedOp::Avg: return static_cast<T>(static_cast<U>(x) + static_cast<U>(y));
    case RedOp::Prod: return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
    case RedOp::Min: return y < x ? y : x;
    default: return y > x ? y : x;
  }
}

// Random values of T: small integers (so products stay varied), floats of mixed sign and size.
template <typename T>
std::vector<T> random_values(size_t n, std::mt19937_64& rng) {
  std::vector<T> v(n);
  for (T& x : v) {
    const int64_t r = static_cast<int64_t>(rng() % 2001) - 1000;
    x = std::is_integral_v<T> ? static_cast<T>(r) : static_cast<T>(static_cast<double>(r) / 37.0);
  }
  return v;
}

inline uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

// The nearest bfloat16 (ties to the even code), by comparing the two codes around x.
inline uint16_t bf16_code(float x) {
  const uint32_t u = bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  if (std::isinf(x)) return static_cast<uint16_t>(u >> 16);
  const uint32_t lo = u >> 16, hi = lo + 1;
  const double dlo = std::fabs(double(from_bits(lo << 16)) - x), dhi = std::fabs(double(from_bits(hi << 16)) - x);
  if (dlo != dhi) return static_cast<uint16_t>(dlo < dhi ? lo : hi);
  return static_cast<uint16_t>(lo % 2 == 0 ? lo : hi);
}

// The compiler's IEEE half type (round to nearest even), independent of the F16C path.
#if defined(__aarch64__)
using Half = __fp16;
#else
using Half = _Float16;
#endif

inline uint16_t f16_code(float x) {
  const Half h = static_cast<Half>(x);
  uint16_t c;
  std::memcpy(&c, &h, 2);
  return c;
}

// The message wire16.h describes: a power-of-two scale putting the largest finite magnitude in
// [2^14, 2^15) (1 for bfloat16 or all-zero input), then the codes.
inline std::vector<uint8_t> encode(Wire w, const float* x, size_t n) {
  float top = 0;
  for (size_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) top = std::max(top, std::fabs(x[i]));
  float scale = 1.f;
  if (w == Wire::F16 && top > 0) {
    int e;
    std::frexp(top, &e);
    scale = std::ldexp(1.f, std::max(-100, std::min(100, 15 - e)));
  }
  std::vector<uint8_t> msg(wire16_bytes(n));
  std::memcpy(msg.data(), &scale, 4);
  for (size_t i = 0; i < n; ++i) {
    const uint16_t c = w == Wire::F16 ? f16_code(x[i] * scale) : bf16_code(x[i]);
    std::memcpy(msg.data() + 4 + 2 * i, &c, 2);
  }
  return msg;
}

inline float decode_one(Wire w, const uint8_t* msg, size_t i) {
  float scale;
  uint16_t c;
  std::memcpy(&scale, msg, 4);
  std::memcpy(&c, msg + 4 + 2 * i, 2);
  if (w == Wire::BF16) return from_bits(static_cast<uint32_t>(c) << 16);
  Half h;
  std::memcpy(&h, &c, 2);
  return static_cast<float>(h) * (1.f / scale);
}

// Floats for the codec: normal values of one magnitude, some zeros, and Inf and NaN.
inline std::vector<float> codec_input(size_t n, float magnitude, std::mt19937_64& rng) {
  std::normal_distribution<float> g(0.f, 1.f);
  std::vector<float> x(n);
  for (float& v : x) v = g(rng) * magnitude;
  if (n > 10) x[3] = 0.f, x[5] = INFINITY, x[7] = -INFINITY, x[9] = NAN;
  return x;
}

}  // namespace unicc::testref
