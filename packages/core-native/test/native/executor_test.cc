// The executor over real channels: simulated ranks as threads joined by Unix socket pairs (one
// per lane), running the schedules back to back, against a reference reduction on random data.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "algorithms/schedules.h"
#include "far_memory.h"
#include "mesh.h"

namespace unicc {
namespace {

using test::BackendPerRank;
using test::Build;
using test::Mesh;
using test::random_inputs;
using test::run_ranks;
using test::sum;

const std::vector<size_t> kCounts = {0, 1, 1001, 300000, 7};

TEST(Executor, RingAllreduceOverLanesBackToBack) {
  for (int n : {2, 3, 4})
    for (int lanes : {1, 3}) {
      auto bufs = random_inputs(n, kCounts, n * 10 + lanes);
      std::vector<std::vector<float>> want;
      for (auto& k : bufs) want.push_back(sum(k));
      const Build build = [n, lanes](int r, size_t count) {
        return ring_allreduce_schedule(n, r, count, 4, pipeline_chunk_elems(64 << 10, lanes, (count + n - 1) / n, 4));
      };
      const auto errors = run_ranks(n, lanes, kCounts, build, bufs);
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(errors[r], "") << n << " ranks, " << lanes << " lanes";
        for (size_t k = 0; k < kCounts.size(); ++k) ASSERT_EQ(bufs[k][r], want[k]) << "rank " << r << ", collective " << k;
      }
    }
}

TEST(Executor, RecursiveDoublingAnyRankCount) {
  for (int n : {2, 3, 5, 6}) {
    auto bufs = random_inputs(n, kCounts, n);
    std::vector<std::vector<float>> want;
    for (auto& k : bufs) want.push_back(sum(k));
    const Build build = [n](int r, size_t count) {
      return recursive_doubling_allreduce_schedule(n, r, count, 4, pipeline_chunk_elems(64 << 10, 2, count, 4));
    };
    const auto errors = run_ranks(n, 2, kCounts, build, bufs);
    for (int r = 0; r < n; ++r) {
      ASSERT_EQ(errors[r], "") << n << " ranks";
      for (size_t k = 0; k < kCounts.size(); ++k) ASSERT_EQ(bufs[k][r], want[k]) << "rank " << r << ", collective " << k;
    }
  }
}

TEST(Executor, SixteenBitWireLeavesEveryRankEqual) {
  const std::vector<size_t> counts = {5000, 3};
  auto bufs = random_inputs(4, counts, 9);
  const Build build = [](int r, size_t count) { return ring_allreduce_schedule(4, r, count, 4, 256); };
  const auto errors = run_ranks(4, 2, counts, build, bufs, Wire::F16);
  for (int r = 0; r < 4; ++r) {
    ASSERT_EQ(errors[r], "");
    for (size_t k = 0; k < counts.size(); ++k) ASSERT_EQ(bufs[k][r], bufs[k][0]) << "rank " << r;
  }
}

// Buffers in memory the CPU cannot touch (a GPU's, emulated): the same schedules give the same
// bits as on host memory, only messages cross to and from the host, and a 16-bit message crosses
// already coded (half the bytes), so the coding ran in the buffers' memory.
TEST(Executor, BuffersOutsideHostMemoryGiveTheSameBitsAndCrossCoded) {
  const int n = 3;
  const std::vector<size_t> counts = {1001, 300000, 7, 0};
  size_t elems = 0;
  for (size_t c : counts) elems += c;
  const std::vector<std::pair<const char*, Build>> schedules = {
      {"ring", [](int r, size_t c) { return ring_allreduce_schedule(n, r, c, 4, pipeline_chunk_elems(64 << 10, 2, (c + n - 1) / n, 4)); }},
      {"recursive doubling", [](int r, size_t c) { return recursive_doubling_allreduce_schedule(n, r, c, 4, pipeline_chunk_elems(64 << 10, 2, c, 4)); }}};
  for (const auto& [name, build] : schedules) {
    size_t exact_crossed = 0;
    for (Wire wire : {Wire::Exact, Wire::F16, Wire::BF16}) {
      const std::string what = std::string(name) + ", " + wire_name(wire);
      auto on_host = random_inputs(n, counts, 77);
      auto far_bufs = on_host;
      const std::vector<std::string> ok(n);
      ASSERT_EQ(run_ranks(n, 2, counts, build, on_host, wire), ok) << what;
      const BackendPerRank<test::FarMemory> far(n, size_t{64} << 20);
      ASSERT_EQ(run_ranks(n, 2, counts, build, far_bufs, wire, {}, far.memory_of()), ok) << what;
      EXPECT_EQ(far_bufs, on_host) << what;
      if (wire == Wire::Exact)
        for (size_t k = 0; k < counts.size(); ++k) EXPECT_EQ(far_bufs[k][0], sum(random_inputs(n, counts, 77)[k])) << what;
      // The harness itself moves every buffer up once and back once.
      const size_t crossed = far.total([](const test::FarMemory& m) { return m.downloaded + m.uploaded; }) - 2 * n * elems * 4;
      if (wire == Wire::Exact) exact_crossed = crossed;
      else EXPECT_NEAR(static_cast<double>(crossed) / exact_crossed, 0.5, 0.01) << what;
      EXPECT_GT(crossed, 0u) << what;
    }
  }
}

TEST(Executor, DifferentSizesAreAnErrorOnEveryRankNotAHang) {
  const std::vector<size_t> counts = {100, 4000};
  auto bufs = random_inputs(3, counts, 1);
  bufs[1][1].resize(4004);
  const Build build = [](int r, size_t count) { return ring_allreduce_schedule(3, r, count, 4, 1 << 20); };
  const auto errors = run_ranks(3, 1, counts, build, bufs, Wire::Exact, {100, 4004});
  bool mismatch = false;
  for (int r = 0; r < 3; ++r) {
    EXPECT_NE(errors[r], "") << "rank " << r << " finished a collective its peers called differently";
    mismatch = mismatch || errors[r].find("ranks called different collectives") != std::string::npos;
  }
  EXPECT_TRUE(mismatch);
}

// Rank 0 sends two parts over one lane; part 0 may leave only once part 1 has (its gate opens from
// another thread when part 1's send is done, as a host's reduce would). An executor that hands out
// sends strictly in order, or sleeps through the gate, does not finish. The parts live in two buffers.
TEST(Executor, IdleLaneTakesALaterReadySendAndAGateWakesIt) {
  Mesh mesh(2, 1);
  const size_t count = 5000;
  std::vector<std::vector<float>> send(2, std::vector<float>(count)), got(2, std::vector<float>(count, 0.f));
  for (size_t i = 0; i < count; ++i) send[0][i] = static_cast<float>(i), send[1][i] = -static_cast<float>(i);
  std::vector<std::string> errors(2);
  std::atomic<bool> gate0{false};
  std::thread opener;
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  auto rank = [&](int r) {
    auto owned = mesh.channels(r);
    std::vector<Channel*> ch{owned[0].get(), owned[1].get()};
    Desc d;
    d.count = count;
    ExecContext cx{d, DType::F32, RedOp::Sum, Wire::Exact, 5000, nullptr, "rank " + std::to_string(r)};
    std::vector<Schedule> parts(2);
    for (Schedule& p : parts) {
      p.size = 2;
      p.rank = r;
      p.add({r == 0 ? Step::kSend : Step::kRecv, false, false, 1 - r, 0, count * 4, {}});
    }
    const Schedule s = batch(parts, {{0, 0}, {1, 0}});
    std::vector<char*> bufs;
    for (auto& b : r == 0 ? send : got) bufs.push_back(reinterpret_cast<char*>(b.data()));
    if (r == 0) {
      cx.gate_open = [&](int32_t g) { return g == 1 || gate0.load(); };
      cx.wake_fd = wake;
      cx.on_done = [&](int32_t step) {
        if (s.steps[static_cast<size_t>(step)].gate != 1) return;
        opener = std::thread([&] {
          gate0 = true;
          const uint64_t one = 1;
          (void)!write(wake, &one, sizeof one);
        });
      };
    }
    try {
      execute(s, bufs, ch, cx);
    } catch (const CommError& e) {
      errors[r] = e.what();
      for (auto& c : mesh.conns[r][1 - r]) shutdown(c->fd(), SHUT_RDWR);
    }
  };
  std::thread t0(rank, 0), t1(rank, 1);
  t0.join();
  t1.join();
  if (opener.joinable()) opener.join();
  close(wake);
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  EXPECT_EQ(got, send);
}

}  // namespace
}  // namespace unicc
