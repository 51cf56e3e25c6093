// The host memory backend (memory/backend.h) against independent references on random data:
// what every other backend is compared with.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "memory/backend.h"
#include "memory_reference.h"

namespace unicc {
namespace {

template <typename T>
void check_reduce(DType t) {
  std::mt19937_64 rng(static_cast<uint64_t>(t) + 11);
  MemoryBackend& mem = host_backend();
  for (RedOp op : {RedOp::Sum, RedOp::Prod, RedOp::Min, RedOp::Max})
    for (size_t n : {size_t{1}, size_t{31}, size_t{100003}}) {
      const std::vector<T> a = testref::random_values<T>(n, rng), b = testref::random_values<T>(n, rng);
      std::vector<T> out(n), in_place = a;
      mem.reduce(out.data(), a.data(), b.data(), n, t, op);
      mem.reduce(in_place.data(), in_place.data(), b.data(), n, t, op);  // out aliasing the first input
      for (size_t i = 0; i < n; ++i) {
        const T want = testref::apply(a[i], b[i], op);
        ASSERT_EQ(out[i], want) << dtype_name(t) << " " << redop_name(op) << " [" << i << "] of " << n;
        ASSERT_EQ(in_place[i], want);
      }
    }
}

TEST(HostMemory, ReduceMatchesPlainLoops) {
  check_reduce<float>(DType::F32);
  check_reduce<double>(DType::F64);
  check_reduce<int32_t>(DType::I32);
  check_reduce<int64_t>(DType::I64);
}

TEST(HostMemory, CopyMovesTheBytes) {
  std::mt19937_64 rng(3);
  std::vector<uint8_t> src(70001), dst(src.size());
  for (uint8_t& c : src) c = static_cast<uint8_t>(rng());
  host_backend().copy(dst.data(), src.data(), src.size());
  EXPECT_EQ(dst, src);
}

// Codes bit for bit as the reference encoder picks them, from aligned and unaligned starts.
TEST(HostMemory, SixteenBitMessagesMatchTheReferenceEncoder) {
  std::mt19937_64 rng(7);
  MemoryBackend& mem = host_backend();
  for (Wire w : {Wire::F16, Wire::BF16})
    for (float magnitude : {1e-6f, 3.f, 1e7f})
      for (size_t n : {size_t{1}, size_t{17}, size_t{40001}})
        for (size_t offset : {size_t{0}, size_t{1}}) {
          const std::vector<float> buf = testref::codec_input(n + offset, magnitude, rng);
          const float* x = buf.data() + offset;
          std::vector<uint8_t> msg(wire16_bytes(n));
          mem.encode16(w, x, n, msg.data());
          const std::vector<uint8_t> want = testref::encode(w, x, n);
          ASSERT_EQ(std::memcmp(msg.data(), want.data(), 4), 0) << wire_name(w) << " scale, magnitude " << magnitude;
          for (size_t i = 0; i < n; ++i)
            ASSERT_EQ(std::memcmp(msg.data() + 4 + 2 * i, want.data() + 4 + 2 * i, 2), 0)
                << wire_name(w) << " code [" << i << "] of " << x[i] << ", magnitude " << magnitude;
        }
}

TEST(HostMemory, DecodeWritesOrFoldsEveryOp) {
  std::mt19937_64 rng(9);
  MemoryBackend& mem = host_backend();
  const size_t n = 5001;
  for (Wire w : {Wire::F16, Wire::BF16})
    for (RedOp op : {RedOp::Sum, RedOp::Prod, RedOp::Min, RedOp::Max}) {
      const std::vector<float> x = testref::codec_input(n, 100.f, rng);
      const std::vector<uint8_t> msg = testref::encode(w, x.data(), n);
      const std::vector<float> base = testref::random_values<float>(n, rng);
      std::vector<float> plain(n, -1.f), folded = base;
      mem.decode16(w, msg.data(), n, plain.data(), false, op);
      mem.decode16(w, msg.data(), n, folded.data(), true, op);
      for (size_t i = 0; i < n; ++i) {
        const float v = testref::decode_one(w, msg.data(), i), f = testref::apply(base[i], v, op);
        ASSERT_TRUE(plain[i] == v || (std::isnan(plain[i]) && std::isnan(v))) << wire_name(w) << " [" << i << "]";
        ASSERT_TRUE(folded[i] == f || (std::isnan(folded[i]) && std::isnan(f))) << wire_name(w) << " " << redop_name(op) << " [" << i << "]";
      }
    }
}

}  // namespace
}  // namespace unicc
