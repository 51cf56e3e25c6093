// The engine's fusion: random batches (mixed kinds, sizes around the in-place limit, several
// fusion sizes) grouped as a reference computed here groups them; then, over simulated ranks,
// packed, reduced group by group, unpacked, and compared with each tensor reduced on its own.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "engine/fusion.h"

namespace unicc {
namespace {

struct Kind {
  DType dtype;
  RedOp op;
  Wire wire;
};
const Kind kKinds[] = {{DType::F32, RedOp::Sum, Wire::Exact},
                       {DType::F32, RedOp::Sum, Wire::F16},
                       {DType::F64, RedOp::Max, Wire::Exact},
                       {DType::I32, RedOp::Sum, Wire::Exact}};

std::vector<FusionInput> random_batch(std::mt19937_64& rng) {
  std::vector<FusionInput> batch(1 + rng() % 120);
  for (FusionInput& t : batch) {
    const Kind& k = kKinds[rng() % 4];
    const size_t es = dtype_size(k.dtype);
    // Mostly small; some just under, at and above the in-place limit.
    size_t count = rng() % 8 ? 1 + rng() % (64 << 10) / es : kInPlaceBytes / es - 1 + rng() % 3;
    if (rng() % 30 == 0) count = (kInPlaceBytes << 1) / es + rng() % 1000;
    t = {k.dtype, k.op, k.wire, count * es};
  }
  return batch;
}

// The reference: the batch's tensors in kind order (dtype, op, wire), then batch order; each
// large one alone; the small ones of a kind poured into bins in order, a new bin whenever the next
// would overflow the current one; the groups ordered by their first tensor.
std::vector<std::vector<size_t>> reference_groups(const std::vector<FusionInput>& batch, size_t fusion_bytes) {
  auto kind = [&](size_t i) {
    return std::make_tuple(static_cast<int>(batch[i].dtype), static_cast<int>(batch[i].op), static_cast<int>(batch[i].wire));
  };
  std::vector<size_t> order(batch.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return kind(a) < kind(b); });
  std::vector<std::vector<size_t>> groups;
  std::map<std::tuple<int, int, int>, std::pair<size_t, size_t>> bin;  // by kind: open group, its bytes
  for (size_t i : order) {
    if (batch[i].bytes >= kInPlaceBytes) {
      groups.push_back({i});
      continue;
    }
    auto it = bin.find(kind(i));
    if (it == bin.end() || it->second.second + batch[i].bytes > fusion_bytes) {
      groups.push_back({});
      it = bin.insert_or_assign(kind(i), std::make_pair(groups.size() - 1, size_t{0})).first;
    }
    groups[it->second.first].push_back(i);
    it->second.second += batch[i].bytes;
  }
  return groups;
}

TEST(Fusion, RandomBatchesGroupLikeTheReference) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const std::vector<FusionInput> batch = random_batch(rng);
    const size_t kSizes[] = {0, 4 << 10, 256 << 10, 1 << 20, 4 << 20, 64 << 20};
    const size_t fusion_bytes = kSizes[rng() % 6];
    const auto groups = plan_fusion(batch, fusion_bytes);
    ASSERT_EQ(groups, reference_groups(batch, fusion_bytes)) << "trial " << trial << ", fusion " << fusion_bytes;
    for (const auto& g : groups) {
      size_t bytes = 0;
      for (size_t i : g) bytes += batch[i].bytes;
      if (g.size() > 1) EXPECT_LE(bytes, fusion_bytes);
    }
  }
}

template <typename T>
void reduce_into(char* out, const char* in, size_t bytes, RedOp op) {
  for (size_t i = 0; i < bytes / sizeof(T); ++i) {
    T a, b;
    std::memcpy(&a, out + i * sizeof(T), sizeof(T));
    std::memcpy(&b, in + i * sizeof(T), sizeof(T));
    const T c = op == RedOp::Max ? std::max(a, b) : static_cast<T>(a + b);
    std::memcpy(out + i * sizeof(T), &c, sizeof(T));
  }
}

void reduce_into(char* out, const char* in, size_t bytes, DType t, RedOp op) {
  if (t == DType::F32) reduce_into<float>(out, in, bytes, op);
  if (t == DType::F64) reduce_into<double>(out, in, bytes, op);
  if (t == DType::I32) reduce_into<int32_t>(out, in, bytes, op);
}

std::vector<char> random_values(size_t bytes, DType t, std::mt19937_64& rng) {
  std::vector<char> v(bytes);
  const size_t es = dtype_size(t);
  for (size_t i = 0; i < bytes / es; ++i) {
    const int32_t x = static_cast<int32_t>(rng() % 2001) - 1000;  // sums exact in any type
    if (t == DType::F32) { const float f = static_cast<float>(x); std::memcpy(&v[i * es], &f, es); }
    if (t == DType::F64) { const double d = x; std::memcpy(&v[i * es], &d, es); }
    if (t == DType::I32) std::memcpy(&v[i * es], &x, es);
  }
  return v;
}

TEST(Fusion, PackedReducedAndUnpackedOverRanksEqualsEachTensorReducedAlone) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    const int n = 2 + static_cast<int>(rng() % 3);
    const std::vector<FusionInput> batch = random_batch(rng);
    const size_t fusion_bytes = trial % 3 == 0 ? 256 << 10 : 64 << 20;
    // data[rank][tensor]; want[tensor]: the tensor reduced alone, in rank order.
    std::vector<std::vector<std::vector<char>>> data(n);
    std::vector<std::vector<char>> want;
    for (int r = 0; r < n; ++r)
      for (const FusionInput& t : batch) data[r].push_back(random_values(t.bytes, t.dtype, rng));
    for (size_t i = 0; i < batch.size(); ++i) {
      want.push_back(data[0][i]);
      for (int r = 1; r < n; ++r) reduce_into(want[i].data(), data[r][i].data(), batch[i].bytes, batch[i].dtype, batch[i].op);
    }
    const auto groups = plan_fusion(batch, fusion_bytes);
    std::vector<FusionBuffer> fusion(n);
    std::vector<std::vector<std::vector<Span>>> spans(n);
    std::vector<std::vector<void*>> where(n);
    for (int r = 0; r < n; ++r) {
      for (const auto& g : groups) {
        spans[r].emplace_back();
        for (size_t i : g) spans[r].back().push_back({data[r][i].data(), batch[i].bytes});
      }
      where[r] = fusion[r].pack(spans[r]);
    }
    // An allreduce of each group, as the communicator would run it on the packed values.
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      size_t bytes = 0;
      for (size_t i : groups[gi]) bytes += batch[i].bytes;
      const FusionInput& k = batch[groups[gi][0]];
      for (int r = 0; r < n; ++r) {
        if (groups[gi].size() == 1) EXPECT_EQ(where[r][gi], data[r][groups[gi][0]].data()) << "a tensor alone is reduced in place";
        else EXPECT_NE(where[r][gi], data[r][groups[gi][0]].data());
      }
      std::vector<char> sum(static_cast<char*>(where[0][gi]), static_cast<char*>(where[0][gi]) + bytes);
      for (int r = 1; r < n; ++r) reduce_into(sum.data(), static_cast<char*>(where[r][gi]), bytes, k.dtype, k.op);
      for (int r = 0; r < n; ++r) std::memcpy(where[r][gi], sum.data(), bytes);
    }
    for (int r = 0; r < n; ++r) {
      fusion[r].unpack(spans[r]);
      for (size_t i = 0; i < batch.size(); ++i)
        ASSERT_EQ(data[r][i], want[i]) << "trial " << trial << ", rank " << r << ", tensor " << i;
    }
  }
}

}  // namespace
}  // namespace unicc
