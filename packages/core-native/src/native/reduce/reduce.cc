#include "reduce/reduce.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/error.h"
#include "reduce/simd.h"

namespace unicc {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: case DType::I64: return 8;
  }
  throw CommError("unknown dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "float32";
    case DType::F64: return "float64";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
  }
  return "unknown";
}

const char* redop_name(RedOp op) {
  switch (op) {
    case RedOp::Sum: return "sum";
    case RedOp::Avg: return "average";
    case RedOp::Min: return "min";
    case RedOp::Max: return "max";
    case RedOp::Prod: return "product";
  }
  return "unknown";
}

namespace {

// Integer arithmetic goes through the unsigned type so that overflow wraps instead of being UB.
template <typename T, bool = std::is_integral_v<T>>
struct ArithOf { using type = T; };
template <typename T>
struct ArithOf<T, true> { using type = std::make_unsigned_t<T>; };
template <typename T>
using Arith = typename ArithOf<T>::type;

template <typename T, RedOp Op>
__attribute__((always_inline)) inline void kernel(T* out, const T* a, const T* b, size_t n) {
  using A = Arith<T>;
  for (size_t i = 0; i < n; ++i) {
    const T x = a[i], y = b[i];
    if constexpr (Op == RedOp::Sum) out[i] = static_cast<T>(static_cast<A>(x) + static_cast<A>(y));
    else if constexpr (Op == RedOp::Prod) out[i] = static_cast<T>(static_cast<A>(x) * static_cast<A>(y));
    else if constexpr (Op == RedOp::Min) out[i] = y < x ? y : x;
    else out[i] = y > x ? y : x;
  }
}

#define UNICC_KERNEL(NAME, T, OP)                                                            \
  UNICC_VECTOR_CLONES void NAME(void* out, const void* a, const void* b, size_t n) {                \
    kernel<T, OP>(static_cast<T*>(out), static_cast<const T*>(a), static_cast<const T*>(b), n); \
  }

#define UNICC_KERNELS(T, SUFFIX)                   \
  UNICC_KERNEL(sum_##SUFFIX, T, RedOp::Sum)        \
  UNICC_KERNEL(prod_##SUFFIX, T, RedOp::Prod)      \
  UNICC_KERNEL(min_##SUFFIX, T, RedOp::Min)        \
  UNICC_KERNEL(max_##SUFFIX, T, RedOp::Max)

UNICC_KERNELS(float, f32)
UNICC_KERNELS(double, f64)
UNICC_KERNELS(int32_t, i32)
UNICC_KERNELS(int64_t, i64)

using KernelFn = void (*)(void*, const void*, const void*, size_t);

KernelFn pick(DType t, RedOp op) {
  static const KernelFn table[4][4] = {
      {sum_f32, prod_f32, min_f32, max_f32},
      {sum_f64, prod_f64, min_f64, max_f64},
      {sum_i32, prod_i32, min_i32, max_i32},
      {sum_i64, prod_i64, min_i64, max_i64},
  };
  int col;
  switch (op) {
    case RedOp::Sum: case RedOp::Avg: col = 0; break;
    case RedOp::Prod: col = 1; break;
    case RedOp::Min: col = 2; break;
    case RedOp::Max: col = 3; break;
    default: throw CommError("unknown reduction op");
  }
  return table[static_cast<int>(t)][col];
}

template <typename T>
void divide_as(void* buf, size_t n, int divisor) {
  T* p = static_cast<T*>(buf);
  const T d = static_cast<T>(divisor);
  for (size_t i = 0; i < n; ++i) p[i] = p[i] / d;
}

}  // namespace

void reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op) {
  if (n) pick(t, op)(out, a, b, n);
}

void reduce_many(void* out, const void* const* srcs, int nsrc, size_t n, DType t, RedOp op, void* also_to) {
  const size_t es = dtype_size(t);
  const size_t block = 8192 / es;
  const KernelFn k = pick(t, op);
  char* o = static_cast<char*>(out);
  char* copy = static_cast<char*>(also_to);
  for (size_t start = 0; start < n; start += block) {
    const size_t m = std::min(block, n - start), off = start * es;
    if (nsrc == 1) std::memmove(o + off, static_cast<const char*>(srcs[0]) + off, m * es);
    else k(o + off, static_cast<const char*>(srcs[0]) + off, static_cast<const char*>(srcs[1]) + off, m);
    for (int s = 2; s < nsrc; ++s) k(o + off, o + off, static_cast<const char*>(srcs[s]) + off, m);
    if (copy) std::memcpy(copy + off, o + off, m * es);
  }
}

void divide(void* buf, size_t n, DType t, int divisor) {
  switch (t) {
    case DType::F32: return divide_as<float>(buf, n, divisor);
    case DType::F64: return divide_as<double>(buf, n, divisor);
    case DType::I32: return divide_as<int32_t>(buf, n, divisor);
    case DType::I64: return divide_as<int64_t>(buf, n, divisor);
  }
}

}  // namespace unicc
