// The CUDA memory backend's kernels. Each computes bit for bit what the host backend computes
// (reduce/reduce.cc, reduce/wire16.cc): the same operand order for min and max, integer sums and
// products wrapping through the unsigned type, IEEE rounding (no fast-math, no flush to zero, no
// fused multiply-add), so that ranks holding their data on different kinds of memory stay
// bit-identical. One exception: arithmetic on a NaN gives the GPU's canonical NaN where the CPU
// keeps the operand's payload; it is a NaN on both.
//
// All of them are memory-bound: each thread moves 16 bytes per access (8 for the codec, whose
// codes sit 4 bytes past a message's start) with several independent accesses in flight, in a
// grid-stride loop over a grid of a few waves.
#include <cuda_fp16.h>

#include <type_traits>

#include "memory/cuda/kernels.h"

namespace unicc::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;  // independent accesses each thread has in flight

template <typename T>
struct Arith { using type = T; };
template <> struct Arith<int32_t> { using type = uint32_t; };
template <> struct Arith<int64_t> { using type = uint64_t; };

template <typename T, RedOp Op>
__device__ __forceinline__ T apply(T x, T y) {
  using A = typename Arith<T>::type;
  if constexpr (Op == RedOp::Sum) return static_cast<T>(static_cast<A>(x) + static_cast<A>(y));
  else if constexpr (Op == RedOp::Prod) return static_cast<T>(static_cast<A>(x) * static_cast<A>(y));
  else if constexpr (Op == RedOp::Min) return y < x ? y : x;
  else return y > x ? y : x;
}

template <typename T>
struct alignas(16) Vec {
  static constexpr int kLanes = 16 / sizeof(T);
  T v[kLanes];
};

int blocks_for(size_t items, int max_blocks) {
  const size_t want = (items + kThreads * kUnroll - 1) / (kThreads * kUnroll);
  return static_cast<int>(want < 1 ? 1 : want < static_cast<size_t>(max_blocks) ? want : max_blocks);
}

// n / lanes whole vectors; the caller checked 16-byte alignment of all three pointers.
template <typename T, RedOp Op>
__global__ void reduce_vec(Vec<T>* out, const Vec<T>* a, const Vec<T>* b, size_t nvec) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t base = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; base < nvec; base += stride * kUnroll) {
    Vec<T> x[kUnroll], y[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < nvec) x[u] = a[base + u * stride], y[u] = b[base + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < nvec) {
#pragma unroll
        for (int k = 0; k < Vec<T>::kLanes; ++k) x[u].v[k] = apply<T, Op>(x[u].v[k], y[u].v[k]);
        out[base + u * stride] = x[u];
      }
  }
}

template <typename T, RedOp Op>
__global__ void reduce_scalar(T* out, const T* a, const T* b, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) out[i] = apply<T, Op>(a[i], b[i]);
}

template <typename T, RedOp Op>
void reduce_as(const Launch& l, void* out, const void* a, const void* b, size_t n) {
  constexpr int lanes = Vec<T>::kLanes;
  const bool aligned = ((reinterpret_cast<uintptr_t>(out) | reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b)) & 15) == 0;
  size_t done = 0;
  if (aligned && n >= static_cast<size_t>(lanes)) {
    const size_t nvec = n / lanes;
    reduce_vec<T, Op><<<blocks_for(nvec, l.max_blocks), kThreads, 0, l.stream>>>(
        static_cast<Vec<T>*>(out), static_cast<const Vec<T>*>(a), static_cast<const Vec<T>*>(b), nvec);
    done = nvec * lanes;
  }
  if (done < n)  // the tail past the last whole vector, or everything when unaligned
    reduce_scalar<T, Op><<<blocks_for(n - done, l.max_blocks), kThreads, 0, l.stream>>>(
        static_cast<T*>(out) + done, static_cast<const T*>(a) + done, static_cast<const T*>(b) + done, n - done);
}

template <typename T>
void reduce_op(const Launch& l, void* out, const void* a, const void* b, size_t n, RedOp op) {
  switch (op) {
    case RedOp::Sum: case RedOp::Avg: return reduce_as<T, RedOp::Sum>(l, out, a, b, n);
    case RedOp::Prod: return reduce_as<T, RedOp::Prod>(l, out, a, b, n);
    case RedOp::Min: return reduce_as<T, RedOp::Min>(l, out, a, b, n);
    case RedOp::Max: return reduce_as<T, RedOp::Max>(l, out, a, b, n);
  }
}

// An average's last step, once per collective: a plain grid-stride loop. IEEE division (no
// fast-math), and C++'s truncating integer division, as the host's.
template <typename T>
__global__ void divide_scalar(T* buf, size_t n, T divisor) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) buf[i] = buf[i] / divisor;
}

template <typename T>
void divide_as(const Launch& l, void* buf, size_t n, int divisor) {
  divide_scalar<T><<<blocks_for(n, l.max_blocks), kThreads, 0, l.stream>>>(static_cast<T*>(buf), n, static_cast<T>(divisor));
}

// ---- 16-bit coding -------------------------------------------------------------------------

// Half precision's largest finite value is 65504; scaled magnitudes stay below 2^15 (wire16.cc).
constexpr int kHalfTopExponent = 15;

__device__ __forceinline__ uint32_t finite_abs_bits(float f) {
  const uint32_t a = __float_as_uint(f) & 0x7fffffffu;
  return a < 0x7f800000u ? a : 0;  // Inf and NaN do not set the scale
}

// The largest finite magnitude's bits into *result (which starts at 0): for non-negative floats
// integer order is numeric order, so an integer maximum (and atomicMax) does it.
__global__ void max_finite_abs(const float* src, size_t n, uint32_t* result) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  uint32_t m = 0;
  const size_t head = (16 - (reinterpret_cast<uintptr_t>(src) & 15)) / 4 % 4;  // floats before a 16-byte boundary
  const size_t lead = head < n ? head : n;
  const size_t nvec = (n - lead) / 4;
  const float4* v = reinterpret_cast<const float4*>(src + lead);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < nvec; i += stride) {
    const float4 f = v[i];
    m = max(m, max(max(finite_abs_bits(f.x), finite_abs_bits(f.y)), max(finite_abs_bits(f.z), finite_abs_bits(f.w))));
  }
  const size_t tid = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (tid < lead) m = max(m, finite_abs_bits(src[tid]));
  const size_t tail = lead + nvec * 4;
  if (tail + tid < n) m = max(m, finite_abs_bits(src[tail + tid]));
  m = __reduce_max_sync(0xffffffffu, m);
  __shared__ uint32_t warp_max[kThreads / 32];
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x < 32) {
    m = threadIdx.x < blockDim.x / 32 ? warp_max[threadIdx.x] : 0;
    m = __reduce_max_sync(0xffffffffu, m);
    if (threadIdx.x == 0 && m) atomicMax(result, m);
  }
}

__device__ __forceinline__ float scale_from(uint32_t max_bits) {
  const float m = __uint_as_float(max_bits);
  if (m == 0.f) return 1.f;
  int e;
  frexpf(m, &e);  // m < 2^e
  return ldexpf(1.f, min(max(kHalfTopExponent - e, -100), 100));
}

// bfloat16 by rounding to nearest even; a NaN stays a quiet NaN (wire16.cc's encode_bf16).
__device__ __forceinline__ uint16_t to_bf16(float f) {
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// The products go through __fmul_rn so that nvcc never fuses them with the sum that follows
// into one FMA (one rounding instead of the host's two).
template <Wire W>
__device__ __forceinline__ uint16_t encode_one(float f, float scale) {
  if constexpr (W == Wire::F16) {
    // A NaN keeps its sign and top payload bits, quieted, as x86's F16C and GCC's conversion do
    // (the GPU's conversion would give its one canonical NaN).
    const uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x3ffu));
    return __half_as_ushort(__float2half_rn(__fmul_rn(f, scale)));
  } else {
    return to_bf16(f);
  }
}

template <Wire W>
__device__ __forceinline__ float decode_one(uint16_t c, float inv) {
  if constexpr (W == Wire::F16) return __fmul_rn(__half2float(__ushort_as_half(c)), inv);
  else return __uint_as_float(static_cast<uint32_t>(c) << 16);
}

// Element pairs: a float2 in, one 32-bit word of two codes out. The message's scale word comes
// first; block 0 writes it. max_bits is null for bfloat16 (scale 1).
template <Wire W>
__global__ void encode_pairs(const float* src, size_t n, float* msg, const uint32_t* max_bits) {
  const float scale = W == Wire::F16 ? scale_from(*max_bits) : 1.f;
  const size_t tid = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (tid == 0) *msg = scale;
  const size_t npairs = n / 2, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const float2* in = reinterpret_cast<const float2*>(src);
  uint32_t* out = reinterpret_cast<uint32_t*>(msg + 1);
  for (size_t base = tid; base < npairs; base += stride * kUnroll) {
    float2 f[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < npairs) f[u] = in[base + u * stride];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < npairs)
        out[base + u * stride] = encode_one<W>(f[u].x, scale) | static_cast<uint32_t>(encode_one<W>(f[u].y, scale)) << 16;
  }
  if (tid == 0 && n % 2) reinterpret_cast<uint16_t*>(msg + 1)[n - 1] = encode_one<W>(src[n - 1], scale);
}

template <Wire W, RedOp Op, bool Accumulate>
__global__ void decode_pairs(const float* msg, size_t n, float* dst) {
  const float inv = W == Wire::F16 ? 1.f / *msg : 1.f;
  const size_t tid = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t npairs = n / 2, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const uint32_t* in = reinterpret_cast<const uint32_t*>(msg + 1);
  float2* out = reinterpret_cast<float2*>(dst);
  for (size_t base = tid; base < npairs; base += stride * kUnroll) {
    uint32_t c[kUnroll];
    float2 d[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < npairs) {
        c[u] = in[base + u * stride];
        if constexpr (Accumulate) d[u] = out[base + u * stride];
      }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + u * stride < npairs) {
        float2 r{decode_one<W>(static_cast<uint16_t>(c[u]), inv), decode_one<W>(static_cast<uint16_t>(c[u] >> 16), inv)};
        if constexpr (Accumulate) r = float2{apply<float, Op>(d[u].x, r.x), apply<float, Op>(d[u].y, r.y)};
        out[base + u * stride] = r;
      }
  }
  if (tid == 0 && n % 2) {
    const float r = decode_one<W>(reinterpret_cast<const uint16_t*>(msg + 1)[n - 1], inv);
    dst[n - 1] = Accumulate ? apply<float, Op>(dst[n - 1], r) : r;
  }
}

// One element a thread, for pointers off the pair layout's alignment (a float array starting at
// an odd element, a message not 4-byte aligned is refused by the backend).
template <Wire W>
__global__ void encode_each(const float* src, size_t n, float* msg, const uint32_t* max_bits) {
  const float scale = W == Wire::F16 ? scale_from(*max_bits) : 1.f;
  const size_t tid = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  if (tid == 0) *msg = scale;
  uint16_t* out = reinterpret_cast<uint16_t*>(msg + 1);
  for (size_t i = tid; i < n; i += stride) out[i] = encode_one<W>(src[i], scale);
}

template <Wire W, RedOp Op, bool Accumulate>
__global__ void decode_each(const float* msg, size_t n, float* dst) {
  const float inv = W == Wire::F16 ? 1.f / *msg : 1.f;
  const size_t tid = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const uint16_t* in = reinterpret_cast<const uint16_t*>(msg + 1);
  for (size_t i = tid; i < n; i += stride) {
    const float r = decode_one<W>(in[i], inv);
    dst[i] = Accumulate ? apply<float, Op>(dst[i], r) : r;
  }
}

bool pairs_aligned(const void* floats) { return (reinterpret_cast<uintptr_t>(floats) & 7) == 0; }

template <Wire W, RedOp Op, bool Accumulate>
void decode_with(const Launch& l, const float* msg, size_t n, float* dst) {
  if (pairs_aligned(dst)) decode_pairs<W, Op, Accumulate><<<blocks_for(n / 2, l.max_blocks), kThreads, 0, l.stream>>>(msg, n, dst);
  else decode_each<W, Op, Accumulate><<<blocks_for(n, l.max_blocks), kThreads, 0, l.stream>>>(msg, n, dst);
}

template <Wire W>
void encode_with(const Launch& l, const float* src, size_t n, float* msg, const uint32_t* max_bits) {
  if (pairs_aligned(src)) encode_pairs<W><<<blocks_for(n / 2, l.max_blocks), kThreads, 0, l.stream>>>(src, n, msg, max_bits);
  else encode_each<W><<<blocks_for(n, l.max_blocks), kThreads, 0, l.stream>>>(src, n, msg, max_bits);
}

template <Wire W>
void decode_as(const Launch& l, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) {
  const float* m = static_cast<const float*>(msg);
  if (!accumulate) return decode_with<W, RedOp::Sum, false>(l, m, n, dst);
  switch (op) {
    case RedOp::Sum: case RedOp::Avg: return decode_with<W, RedOp::Sum, true>(l, m, n, dst);
    case RedOp::Prod: return decode_with<W, RedOp::Prod, true>(l, m, n, dst);
    case RedOp::Min: return decode_with<W, RedOp::Min, true>(l, m, n, dst);
    case RedOp::Max: return decode_with<W, RedOp::Max, true>(l, m, n, dst);
  }
}

}  // namespace

cudaError_t reduce(const Launch& l, void* out, const void* a, const void* b, size_t n, DType t, RedOp op) {
  if (!n) return cudaSuccess;
  switch (t) {
    case DType::F32: reduce_op<float>(l, out, a, b, n, op); break;
    case DType::F64: reduce_op<double>(l, out, a, b, n, op); break;
    case DType::I32: reduce_op<int32_t>(l, out, a, b, n, op); break;
    case DType::I64: reduce_op<int64_t>(l, out, a, b, n, op); break;
  }
  return cudaGetLastError();
}

cudaError_t divide(const Launch& l, void* buf, size_t n, DType t, int divisor) {
  if (!n) return cudaSuccess;
  switch (t) {
    case DType::F32: divide_as<float>(l, buf, n, divisor); break;
    case DType::F64: divide_as<double>(l, buf, n, divisor); break;
    case DType::I32: divide_as<int32_t>(l, buf, n, divisor); break;
    case DType::I64: divide_as<int64_t>(l, buf, n, divisor); break;
  }
  return cudaGetLastError();
}

cudaError_t encode16(const Launch& l, Wire w, const float* src, size_t n, void* msg, uint32_t* scratch) {
  float* m = static_cast<float*>(msg);
  if (w == Wire::BF16) {
    encode_with<Wire::BF16>(l, src, n, m, nullptr);
    return cudaGetLastError();
  }
  // Two passes: the scale needs the largest magnitude first. A chunk of a pipelined transfer
  // (megabytes) stays in the 50-60 MB L2 of an H100/H200 between them, so the second pass reads
  // it from there.
  if (const cudaError_t e = cudaMemsetAsync(scratch, 0, sizeof *scratch, l.stream)) return e;
  if (n) max_finite_abs<<<blocks_for(n / 4, l.max_blocks), kThreads, 0, l.stream>>>(src, n, scratch);
  encode_with<Wire::F16>(l, src, n, m, scratch);
  return cudaGetLastError();
}

cudaError_t decode16(const Launch& l, Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) {
  if (!n) return cudaSuccess;
  if (w == Wire::F16) decode_as<Wire::F16>(l, msg, n, dst, accumulate, op);
  else decode_as<Wire::BF16>(l, msg, n, dst, accumulate, op);
  return cudaGetLastError();
}

}  // namespace unicc::cuda
