// The reduction kernels and the 16-bit codec against plain loops written here, on random data,
// so that a build for another CPU (AVX2 clones, NEON, scalar) is checked for what it computes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc {
namespace {

// Integers wrap: their arithmetic goes through the unsigned type.
template <typename T, bool = std::is_integral_v<T>>
struct Arith { using type = T; };
template <typename T>
struct Arith<T, true> { using type = std::make_unsigned_t<T>; };

template <typename T>
T expect_op(T x, T y, RedOp op) {
  using U = typename Arith<T>::type;
  switch (op) {
    case RedOp::Sum: return static_cast<T>(static_cast<U>(x) + static_cast<U>(y));
    case RedOp::Prod: return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
    case RedOp::Min: return y < x ? y : x;
    default: return y > x ? y : x;
  }
}

template <typename T>
void check_kernels(DType t) {
  std::mt19937_64 rng(static_cast<uint64_t>(t) + 1);
  for (RedOp op : {RedOp::Sum, RedOp::Prod, RedOp::Min, RedOp::Max})
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{33}, size_t{4099}}) {  // odd lengths: vector tails
      std::vector<T> a(n), b(n), out(n);
      for (size_t i = 0; i < n; ++i) {
        a[i] = static_cast<T>(static_cast<int64_t>(rng() % 20001) - 10000) / (std::is_integral_v<T> ? 1 : 7);
        b[i] = static_cast<T>(static_cast<int64_t>(rng() % 20001) - 10000) / (std::is_integral_v<T> ? 1 : 3);
      }
      reduce(out.data(), a.data(), b.data(), n, t, op);
      for (size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], expect_op(a[i], b[i], op)) << dtype_name(t) << " " << redop_name(op) << " [" << i << "]";
      // Several sources, block by block, with the copy alongside.
      std::vector<T> c(n), many(n), copy(n);
      for (size_t i = 0; i < n; ++i) c[i] = static_cast<T>(rng() % 100);
      const void* srcs[3] = {a.data(), b.data(), c.data()};
      reduce_many(many.data(), srcs, 3, n, t, op, copy.data());
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(many[i], expect_op(expect_op(a[i], b[i], op), c[i], op)) << dtype_name(t) << " [" << i << "]";
        ASSERT_EQ(copy[i], many[i]);
      }
    }
}

TEST(Reduce, EveryKernelMatchesAPlainLoop) {
  check_kernels<float>(DType::F32);
  check_kernels<double>(DType::F64);
  check_kernels<int32_t>(DType::I32);
  check_kernels<int64_t>(DType::I64);
}

TEST(Reduce, IntegerSumsAndProductsWrap) {
  const int32_t a[2] = {std::numeric_limits<int32_t>::max(), 1 << 20};
  const int32_t b[2] = {1, 1 << 12};
  int32_t out[2];
  reduce(out, a, b, 2, DType::I32, RedOp::Sum);
  EXPECT_EQ(out[0], std::numeric_limits<int32_t>::min());
  reduce(out, a, b, 2, DType::I32, RedOp::Prod);
  EXPECT_EQ(out[1], 0);
}

TEST(Wire16, HalfAndBfloatRoundTripsWithinTheirPrecision) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g(0.f, 1.f);
  for (Wire w : {Wire::F16, Wire::BF16})
    for (float magnitude : {1e-7f, 1.f, 1e6f})
      for (size_t n : {size_t{1}, size_t{9}, size_t{5003}}) {
        std::vector<float> x(n), back(n), acc(n, 1.f);
        for (float& v : x) v = g(rng) * magnitude;
        std::vector<char> msg(wire16_bytes(n));
        wire16_encode(w, x.data(), n, msg.data());
        wire16_decode(w, msg.data(), n, back.data(), false, RedOp::Sum);
        wire16_decode(w, msg.data(), n, acc.data(), true, RedOp::Sum);
        float top = 0;
        for (float v : x) top = std::max(top, std::fabs(v));
        // A relative bound per value (bf16: 8 bits) and, for half, an absolute one near zero
        // (the shared scale puts the largest value just below 2^15).
        const float rel = w == Wire::F16 ? 1.f / 1024 : 1.f / 128, abs_floor = top * std::ldexp(1.f, -24);
        for (size_t i = 0; i < n; ++i) {
          ASSERT_NEAR(back[i], x[i], std::fabs(x[i]) * rel + abs_floor) << wire_name(w) << " " << magnitude << " [" << i << "]";
          ASSERT_EQ(acc[i], 1.f + back[i]);
        }
      }
}

TEST(Wire16, InfinityAndNanPass) {
  const float x[4] = {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                      std::numeric_limits<float>::quiet_NaN(), 3.f};
  for (Wire w : {Wire::F16, Wire::BF16}) {
    std::vector<char> msg(wire16_bytes(4));
    float back[4];
    wire16_encode(w, x, 4, msg.data());
    wire16_decode(w, msg.data(), 4, back, false, RedOp::Sum);
    EXPECT_EQ(back[0], x[0]);
    EXPECT_EQ(back[1], x[1]);
    EXPECT_TRUE(std::isnan(back[2]));
    EXPECT_EQ(back[3], 3.f);
  }
}

}  // namespace
}  // namespace unicc
