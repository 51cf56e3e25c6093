#include "reduce/wire16.h"

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "reduce/simd.h"

namespace unicc {

const char* wire_name(Wire w) {
  switch (w) {
    case Wire::Exact: return "none";
    case Wire::F16: return "fp16";
    case Wire::BF16: return "bf16";
  }
  return "unknown";
}

namespace {

// Half precision's largest finite value is 65504; keeping scaled magnitudes below 2^15 leaves
// room for rounding up without reaching infinity.
constexpr int kHalfTopExponent = 15;

// On the bit patterns: for non-negative floats, integer order is numeric order, and the integer
// loop vectorises where a float compare that must skip NaN does not. Signed: with its sign bit
// cleared the pattern is a non-negative int32, and GCC turns the signed max into vpmaxsd, where
// the unsigned one stayed a scalar loop at a fifth of the speed.
UNICC_VECTOR_CLONES float max_finite_abs(const float* p, size_t n) {
  int32_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    int32_t a;
    std::memcpy(&a, p + i, 4);
    a &= 0x7fffffff;
    const int32_t finite = a < 0x7f800000 ? a : 0;  // Inf and NaN do not set the scale
    m = finite > m ? finite : m;
  }
  float f;
  std::memcpy(&f, &m, 4);
  return f;
}

float pick_scale(Wire w, const float* src, size_t n) {
  if (w == Wire::BF16) return 1.f;  // bfloat16 has float32's exponent range
  const float m = max_finite_abs(src, n);
  if (m == 0.f) return 1.f;
  int e;
  std::frexp(m, &e);  // m < 2^e
  return std::ldexp(1.f, std::clamp(kHalfTopExponent - e, -100, 100));
}

// Half-precision conversions: on x86-64 the F16C instructions where the CPU has them (one
// instruction per 8 values), else the compiler's software conversion; on aarch64 the plain loops
// below, which the compiler turns into NEON conversions (fcvtn/fcvtl).
#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) void encode_f16_x86(const float* src, size_t n, float scale, uint16_t* out) {
  const __m256 s = _mm256_set1_ps(scale);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(src + i), s), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = _cvtss_sh(src[i] * scale, _MM_FROUND_TO_NEAREST_INT);
}

__attribute__((target("avx2,f16c"))) void decode_f16_x86(const uint16_t* in, size_t n, float inv, float* out) {
  const __m256 s = _mm256_set1_ps(inv);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtph_ps(h), s));
  }
  for (; i < n; ++i) out[i] = _cvtsh_ss(in[i]) * inv;
}

const bool kHasF16C = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2");
#endif

// The compiler's IEEE half type: aarch64's __fp16 (GCC before 13 has no _Float16 in C++ there).
#if defined(__aarch64__)
using Half = __fp16;
#else
using Half = _Float16;
#endif

void encode_f16(const float* src, size_t n, float scale, uint16_t* out) {
#if defined(__x86_64__)
  if (kHasF16C) return encode_f16_x86(src, n, scale, out);
#endif
  Half* h = reinterpret_cast<Half*>(out);
  for (size_t i = 0; i < n; ++i) h[i] = static_cast<Half>(src[i] * scale);
}

void decode_f16(const uint16_t* in, size_t n, float inv, float* out) {
#if defined(__x86_64__)
  if (kHasF16C) return decode_f16_x86(in, n, inv, out);
#endif
  const Half* h = reinterpret_cast<const Half*>(in);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(h[i]) * inv;
}

void encode_bf16(const float* src, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &src[i], 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) out[i] = static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN stays NaN
    else out[i] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);            // round to nearest even
  }
}

void decode_bf16(const uint16_t* in, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = static_cast<uint32_t>(in[i]) << 16;
    std::memcpy(&out[i], &u, 4);
  }
}

}  // namespace

namespace {

thread_local int64_t busy_ns = 0;

// Adds the lifetime of a scope to this thread's coding time.
struct CodingTimer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  ~CodingTimer() { busy_ns += (std::chrono::steady_clock::now() - t0).count(); }
};

}  // namespace

int64_t wire16_thread_ns() { return busy_ns; }

void wire16_encode(Wire w, const float* src, size_t n, void* msg) {
  const CodingTimer timer;
  const float scale = pick_scale(w, src, n);
  std::memcpy(msg, &scale, 4);
  char* codes = static_cast<char*>(msg) + 4;
  if (w == Wire::F16) encode_f16(src, n, scale, reinterpret_cast<uint16_t*>(codes));
  else encode_bf16(src, n, reinterpret_cast<uint16_t*>(codes));
}

void wire16_decode(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) {
  const CodingTimer timer;
  float scale;
  std::memcpy(&scale, msg, 4);
  const char* codes = static_cast<const char*>(msg) + 4;
  constexpr size_t kBlock = 2048;  // decoded block stays in L1 until it is folded into dst
  float tmp[kBlock];
  for (size_t s = 0; s < n; s += kBlock) {
    const size_t m = std::min(kBlock, n - s);
    float* out = accumulate ? tmp : dst + s;
    if (w == Wire::F16) decode_f16(reinterpret_cast<const uint16_t*>(codes) + s, m, 1.f / scale, out);
    else decode_bf16(reinterpret_cast<const uint16_t*>(codes) + s, m, out);
    if (accumulate) reduce(dst + s, dst + s, tmp, m, DType::F32, op);
  }
}

}  // namespace unicc
