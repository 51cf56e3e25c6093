// The schedules, run in memory over simulated ranks (sim.h) on random data, against a reference
// reduction computed here in rank order.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "algorithms/schedules.h"
#include "sim.h"

namespace unicc {
namespace {

using Buffers = std::vector<std::vector<char>>;

struct Case {
  DType t;
  RedOp op;
};
// Values whose every reduction is exact in any order (small integers; powers of two for products),
// so that results compare with == whatever order a schedule combines them in.
const Case kCases[] = {{DType::F32, RedOp::Sum}, {DType::I32, RedOp::Sum}, {DType::I64, RedOp::Prod},
                       {DType::F64, RedOp::Max}, {DType::F32, RedOp::Min}, {DType::F32, RedOp::Prod}};

template <typename T>
T draw(std::mt19937_64& rng, RedOp op) {
  if (op == RedOp::Prod) {
    static const double kFactors[] = {-2, -1, -0.5, 0.5, 1, 2};
    const double f = kFactors[rng() % 6];
    return std::is_integral_v<T> ? static_cast<T>(rng() % 7) - 3 : static_cast<T>(f);
  }
  return static_cast<T>(static_cast<int64_t>(rng() % 2001) - 1000);
}

std::vector<char> random_buffer(size_t count, DType t, RedOp op, std::mt19937_64& rng) {
  std::vector<char> b(count * dtype_size(t));
  for (size_t i = 0; i < count; ++i) {
    switch (t) {
      case DType::F32: { const float v = draw<float>(rng, op); std::memcpy(&b[i * 4], &v, 4); break; }
      case DType::F64: { const double v = draw<double>(rng, op); std::memcpy(&b[i * 8], &v, 8); break; }
      case DType::I32: { const int32_t v = draw<int32_t>(rng, op); std::memcpy(&b[i * 4], &v, 4); break; }
      case DType::I64: { const int64_t v = draw<int64_t>(rng, op); std::memcpy(&b[i * 8], &v, 8); break; }
    }
  }
  return b;
}

std::vector<char> reference(const Buffers& in, DType t, RedOp op) {
  std::vector<char> out = in[0];
  for (size_t r = 1; r < in.size(); ++r) reduce(out.data(), out.data(), in[r].data(), out.size() / dtype_size(t), t, op);
  return out;
}

Buffers inputs(int n, size_t count, const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Buffers b;
  for (int r = 0; r < n; ++r) b.push_back(random_buffer(count, c.t, c.op, rng));
  return b;
}

template <typename Build>
std::vector<Schedule> all_ranks(int n, Build build) {
  std::vector<Schedule> s;
  for (int r = 0; r < n; ++r) s.push_back(build(r));
  return s;
}

std::string label(int n, size_t count, size_t chunk, const Case& c) {
  return std::to_string(n) + " ranks, " + std::to_string(count) + " " + dtype_name(c.t) + " (" + redop_name(c.op) +
         "), chunks of " + std::to_string(chunk);
}

const size_t kCounts[] = {0, 1, 5, 9, 100, 1001};
const size_t kChunks[] = {7, 64, size_t{1} << 20};

TEST(Schedules, SmallBatchesAreCutIntoFourPiecesOfAMebibyteAtLeast) {
  constexpr size_t MiB = 1 << 20;
  EXPECT_EQ(pipeline_piece_bytes(102 * MiB, 8 * MiB), 8 * MiB);  // large: as configured
  EXPECT_EQ(pipeline_piece_bytes(8 * MiB, 8 * MiB), 2 * MiB);    // one piece would not pipeline
  EXPECT_EQ(pipeline_piece_bytes(20 * MiB, 8 * MiB), 5 * MiB);
  EXPECT_EQ(pipeline_piece_bytes(2 * MiB, 8 * MiB), MiB);        // not below a mebibyte
  EXPECT_EQ(pipeline_piece_bytes(100 * MiB, 32 * MiB), 25 * MiB);
  EXPECT_EQ(pipeline_piece_bytes(MiB, 512 << 10), size_t{512} << 10);  // never above the configured size
}

TEST(Schedules, RingAllreduce) {
  int k = 0;
  for (int n = 1; n <= 8; ++n)
    for (size_t count : kCounts)
      for (size_t chunk : kChunks) {
        const Case& c = kCases[k++ % std::size(kCases)];
        Buffers b = inputs(n, count, c, k);
        const std::vector<char> want = reference(b, c.t, c.op);
        auto s = all_ranks(n, [&](int r) { return ring_allreduce_schedule(n, r, count, dtype_size(c.t), chunk); });
        ASSERT_EQ(test::simulate(s, b, c.t, c.op, Wire::Exact, k), "") << label(n, count, chunk, c);
        for (int r = 0; r < n; ++r) ASSERT_EQ(b[r], want) << "rank " << r << ", " << label(n, count, chunk, c);
      }
}

TEST(Schedules, RingReduceScatterLeavesBlockIOnRankI) {
  int k = 0;
  for (int n = 1; n <= 8; ++n)
    for (size_t count : kCounts)
      for (size_t chunk : kChunks) {
        const Case& c = kCases[k++ % std::size(kCases)];
        const size_t es = dtype_size(c.t);
        Buffers b = inputs(n, count, c, 100 + k);
        const std::vector<char> want = reference(b, c.t, c.op);
        auto s = all_ranks(n, [&](int r) { return ring_reduce_scatter_schedule(n, r, count, es, chunk); });
        ASSERT_EQ(test::simulate(s, b, c.t, c.op, Wire::Exact, k), "") << label(n, count, chunk, c);
        const Partition blocks{count, static_cast<size_t>(n)};
        for (int r = 0; r < n; ++r) {
          const size_t from = blocks.start(r) * es, to = from + blocks.len(r) * es;
          ASSERT_TRUE(std::equal(b[r].begin() + from, b[r].begin() + to, want.begin() + from))
              << "rank " << r << ", " << label(n, count, chunk, c);
        }
      }
}

TEST(Schedules, RingAllgatherGivesEveryBlockToEveryRank) {
  int k = 0;
  for (int n = 1; n <= 8; ++n)
    for (size_t count : kCounts)
      for (size_t chunk : kChunks) {
        const Case c{DType::I32, RedOp::Sum};
        const Partition blocks{count, static_cast<size_t>(n)};
        std::mt19937_64 rng(++k);
        const std::vector<char> whole = random_buffer(count, c.t, c.op, rng);
        Buffers b(n, std::vector<char>(count * 4, 0x5a));  // garbage outside each rank's own block
        for (int r = 0; r < n; ++r)
          std::memcpy(b[r].data() + blocks.start(r) * 4, whole.data() + blocks.start(r) * 4, blocks.len(r) * 4);
        auto s = all_ranks(n, [&](int r) { return ring_allgather_schedule(n, r, count, 4, chunk); });
        ASSERT_EQ(test::simulate(s, b, c.t, c.op, Wire::Exact, k), "") << label(n, count, chunk, c);
        for (int r = 0; r < n; ++r) ASSERT_EQ(b[r], whole) << "rank " << r << ", " << label(n, count, chunk, c);
      }
}

TEST(Schedules, RingBroadcastFromEveryRoot) {
  int k = 0;
  for (int n = 1; n <= 7; ++n)
    for (size_t bytes : {size_t{0}, size_t{1}, size_t{63}, size_t{4097}})
      for (int root = 0; root < n; ++root) {
        std::mt19937_64 rng(++k);
        Buffers b(n, std::vector<char>(bytes, 0));
        for (char& ch : b[root]) ch = static_cast<char>(rng());
        auto s = all_ranks(n, [&](int r) { return ring_broadcast_schedule(n, r, bytes, root, 1000); });
        ASSERT_EQ(test::simulate(s, b, DType::I32, RedOp::Sum, Wire::Exact, k), "");
        for (int r = 0; r < n; ++r) ASSERT_EQ(b[r], b[root]) << n << " ranks, root " << root << ", " << bytes << " bytes";
      }
}

TEST(Schedules, RecursiveDoublingAllreduceAnyRankCount) {
  int k = 0;
  for (int n = 1; n <= 13; ++n)
    for (size_t count : kCounts)
      for (size_t chunk : kChunks) {
        const Case& c = kCases[k++ % std::size(kCases)];
        Buffers b = inputs(n, count, c, 200 + k);
        const std::vector<char> want = reference(b, c.t, c.op);
        auto s = all_ranks(n, [&](int r) {
          return recursive_doubling_allreduce_schedule(n, r, count, dtype_size(c.t), chunk);
        });
        ASSERT_EQ(test::simulate(s, b, c.t, c.op, Wire::Exact, k), "") << label(n, count, chunk, c);
        for (int r = 0; r < n; ++r) ASSERT_EQ(b[r], want) << "rank " << r << ", " << label(n, count, chunk, c);
      }
}

TEST(Schedules, RecursiveDoublingTakesLog2Rounds) {
  // 8 ranks: three exchanges of the whole buffer; 6 ranks: a fold, two exchanges, a return.
  const Schedule eight = recursive_doubling_allreduce_schedule(8, 5, 256, 4, 1 << 20);
  ASSERT_EQ(eight.steps.size(), 6u);
  EXPECT_EQ(eight.steps[0].peer, 4);
  EXPECT_EQ(eight.steps[2].peer, 7);
  EXPECT_EQ(eight.steps[4].peer, 1);
  EXPECT_EQ(recursive_doubling_allreduce_schedule(6, 0, 256, 4, 1 << 20).steps.size(), 2u);  // folds, waits
  EXPECT_EQ(recursive_doubling_allreduce_schedule(6, 1, 256, 4, 1 << 20).steps.size(), 6u);
}

TEST(Schedules, HierarchicalAllreduceEqualAndWeightedBlocks) {
  int k = 0;
  const uint32_t thirds[] = {0, kShareUnits / 6, kShareUnits / 2, kShareUnits};
  for (int hosts = 1; hosts <= 3; ++hosts)
    for (int local = 1; local <= 3; ++local)
      for (size_t count : kCounts)
        for (bool weighted : {false, true}) {
          const int n = hosts * local;
          const Case& c = kCases[k++ % std::size(kCases)];
          const Partition blocks{count, static_cast<size_t>(local), weighted && local == 3 ? thirds : nullptr};
          Buffers b = inputs(n, count, c, 300 + k);
          const std::vector<char> want = reference(b, c.t, c.op);
          auto s = all_ranks(n, [&](int r) {
            return hierarchical_allreduce_schedule(hosts, local, r, blocks, dtype_size(c.t), 16);
          });
          ASSERT_EQ(test::simulate(s, b, c.t, c.op, Wire::Exact, k), "") << hosts << "x" << local << ", " << label(n, count, 16, c);
          for (int r = 0; r < n; ++r)
            ASSERT_EQ(b[r], want) << "rank " << r << ", " << hosts << "x" << local << ", " << label(n, count, 16, c);
        }
}

TEST(Schedules, BatchRunsEachPartOnItsBytesOnceItsGateOpens) {
  // Parts of uneven sizes (some small enough for recursive doubling), back to back in one buffer;
  // the simulator opens the gates at random moments, and a gated step waits for its gate.
  int k = 0;
  const std::vector<size_t> counts = {5, 0, 1001, 9, 300};
  for (int n : {2, 3, 5})
    for (const Case& c : kCases) {
      size_t total = 0;
      std::vector<Place> places;
      for (size_t count : counts) {
        places.push_back({0, total * dtype_size(c.t)});
        total += count;
      }
      Buffers b = inputs(n, total, c, 700 + ++k);
      const std::vector<char> want = reference(b, c.t, c.op);
      auto s = all_ranks(n, [&](int r) {
        std::vector<Schedule> parts;
        for (size_t i = 0; i < counts.size(); ++i)
          parts.push_back(i % 2 ? recursive_doubling_allreduce_schedule(n, r, counts[i], dtype_size(c.t), 4)
                                : ring_allreduce_schedule(n, r, counts[i], dtype_size(c.t), 16));
        return batch(parts, places);
      });
      for (const Step& st : s[0].steps) {
        const size_t part = static_cast<size_t>(st.gate);
        ASSERT_LT(part, counts.size());
        const size_t lo = places[part].offset, hi = lo + counts[part] * dtype_size(c.t);
        ASSERT_TRUE(st.offset >= lo && st.offset + st.bytes <= hi) << "a step of part " << part << " outside its bytes";
      }
      ASSERT_EQ(test::simulate(s, b, c.t, c.op, Wire::Exact, k), "") << label(n, total, 16, c);
      for (int r = 0; r < n; ++r) ASSERT_EQ(b[r], want) << "rank " << r << ", " << label(n, total, 16, c);
    }
}

TEST(Schedules, SixteenBitWireEndsEqualOnEveryRank) {
  int k = 0;
  for (Wire w : {Wire::F16, Wire::BF16})
    for (int n : {2, 3, 4, 5, 8})
      for (bool doubling : {false, true}) {
        if (doubling && (n & (n - 1))) continue;  // see recursive_doubling_allreduce_schedule
        std::mt19937_64 rng(++k);
        std::normal_distribution<float> g(0.f, 1.f);
        const size_t count = 999;
        Buffers b(n, std::vector<char>(count * 4));
        for (auto& buf : b)
          for (size_t i = 0; i < count; ++i) { const float v = g(rng); std::memcpy(&buf[i * 4], &v, 4); }
        const std::vector<char> exact = reference(b, DType::F32, RedOp::Sum);
        auto s = all_ranks(n, [&](int r) {
          return doubling ? recursive_doubling_allreduce_schedule(n, r, count, 4, 100)
                          : ring_allreduce_schedule(n, r, count, 4, 100);
        });
        ASSERT_EQ(test::simulate(s, b, DType::F32, RedOp::Sum, w, k), "");
        for (int r = 1; r < n; ++r) ASSERT_EQ(b[r], b[0]) << "rank " << r << " differs, " << n << " ranks, " << wire_name(w);
        const float* got = reinterpret_cast<const float*>(b[0].data());
        const float* ref = reinterpret_cast<const float*>(exact.data());
        const float tol = (w == Wire::F16 ? 2e-3f : 2e-2f) * static_cast<float>(n) * 4.f;
        for (size_t i = 0; i < count; ++i) ASSERT_NEAR(got[i], ref[i], tol) << "element " << i;
      }
}

TEST(Simulator, CatchesAReduceIntoBytesStillBeingSent) {
  // Without "reduce only once the chunk has left", some order of events corrupts the send.
  bool caught = false;
  for (uint64_t seed = 1; seed < 50 && !caught; ++seed) {
    std::vector<Schedule> s;
    for (int r = 0; r < 4; ++r) {
      Schedule x = recursive_doubling_allreduce_schedule(4, r, 8, 4, 1 << 20);
      for (Step& st : x.steps)
        if (st.kind == Step::kRecvReduce) st.after.clear();
      s.push_back(x);
    }
    Buffers b = inputs(4, 8, {DType::I32, RedOp::Sum}, seed);
    caught = test::simulate(s, b, DType::I32, RedOp::Sum, Wire::Exact, seed).find("changed while") != std::string::npos;
  }
  EXPECT_TRUE(caught);
}

TEST(Simulator, CatchesUnmatchedMessages) {
  std::vector<Schedule> s = all_ranks(3, [](int r) { return ring_allreduce_schedule(3, r, 30, 4, 4); });
  s[1].steps.pop_back();  // a receive rank 1 forgets
  Buffers b = inputs(3, 30, {DType::I32, RedOp::Sum}, 1);
  EXPECT_NE(test::simulate(s, b, DType::I32, RedOp::Sum, Wire::Exact, 1), "");
  s = all_ranks(3, [](int r) { return ring_allreduce_schedule(3, r, 30, 4, 4); });
  s[1].steps[1].bytes -= 4;  // a receive of the wrong size
  EXPECT_NE(test::simulate(s, b, DType::I32, RedOp::Sum, Wire::Exact, 1).find("carries"), std::string::npos);
}

TEST(Compose, AppendWaitsOnlyForOverlappingWrites) {
  Schedule a;
  a.size = 2;
  a.add({Step::kRecvReduce, false, false, 1, 0, 16, {}});
  a.add({Step::kSend, false, false, 1, 16, 16, {}});
  Schedule b;
  b.size = 2;
  b.add({Step::kSend, false, false, 1, 8, 4, {}});    // reads what a's receive wrote
  b.add({Step::kSend, false, false, 1, 20, 4, {}});   // reads what a's send reads: no order needed
  b.add({Step::kRecv, false, false, 1, 16, 4, {1}});  // writes what a's send reads
  append_after(a, b);
  EXPECT_EQ(a.steps[2].after, std::vector<int32_t>({0}));
  EXPECT_TRUE(a.steps[3].after.empty());
  EXPECT_EQ(a.steps[4].after, std::vector<int32_t>({3, 1}));
}

}  // namespace
}  // namespace unicc
