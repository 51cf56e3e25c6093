// The executor over real channels: simulated ranks as threads joined by Unix socket pairs (one
// per lane), running the schedules back to back, against a reference reduction on random data.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "algorithms/schedules.h"
#include "common/error.h"
#include "transport/executor.h"
#include "transport/tcp_channel.h"

namespace unicc {
namespace {

// Every pair of ranks joined by `lanes` socket pairs.
struct Mesh {
  std::vector<std::vector<std::vector<std::unique_ptr<Conn>>>> conns;  // [rank][peer][lane]
  Mesh(int n, int lanes) : conns(n) {
    for (auto& per_rank : conns) per_rank.resize(n);
    for (int a = 0; a < n; ++a)
      for (int b = a + 1; b < n; ++b)
        for (int l = 0; l < lanes; ++l) {
          int fds[2];
          if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
          conns[a][b].push_back(std::make_unique<Conn>(fds[0], b, "rank " + std::to_string(b)));
          conns[b][a].push_back(std::make_unique<Conn>(fds[1], a, "rank " + std::to_string(a)));
        }
  }
  std::vector<std::unique_ptr<TcpChannel>> channels(int r) const {
    std::vector<std::unique_ptr<TcpChannel>> out(conns.size());
    for (size_t p = 0; p < conns.size(); ++p) {
      if (static_cast<int>(p) == r) continue;
      std::vector<Conn*> lanes;
      for (const auto& c : conns[r][p]) lanes.push_back(c.get());
      out[p] = std::make_unique<TcpChannel>(lanes);
    }
    return out;
  }
};

using Build = std::function<Schedule(int rank, size_t count)>;

// Runs, on n threads, one allreduce per count in `counts` (collective #0, #1, ...); returns each
// rank's error text ("" when it succeeded).
std::vector<std::string> run_ranks(int n, int lanes, const std::vector<size_t>& counts, const Build& build,
                                   std::vector<std::vector<std::vector<float>>>& bufs, Wire wire = Wire::Exact,
                                   const std::vector<size_t>& count_of_rank1 = {}) {
  Mesh mesh(n, lanes);
  std::vector<std::string> errors(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      auto owned = mesh.channels(r);
      std::vector<Channel*> ch;
      for (auto& c : owned) ch.push_back(c.get());
      try {
        for (size_t k = 0; k < counts.size(); ++k) {
          const size_t count = r == 1 && !count_of_rank1.empty() ? count_of_rank1[k] : counts[k];
          Desc d;
          d.seq = static_cast<uint32_t>(k);
          d.count = count;
          const ExecContext cx{d, DType::F32, RedOp::Sum, wire, 5000, nullptr, "rank " + std::to_string(r)};
          execute(build(r, count), reinterpret_cast<char*>(bufs[k][r].data()), ch, cx);
        }
      } catch (const CommError& e) {
        errors[r] = e.what();
        for (auto& per_peer : mesh.conns[r])
          for (auto& c : per_peer) shutdown(c->fd(), SHUT_RDWR);  // as a failed rank's sockets close
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

std::vector<std::vector<std::vector<float>>> random_inputs(int n, const std::vector<size_t>& counts, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::vector<float>>> b(counts.size());
  for (size_t k = 0; k < counts.size(); ++k)
    for (int r = 0; r < n; ++r) {
      b[k].emplace_back(counts[k]);
      for (float& v : b[k][r]) v = static_cast<float>(static_cast<int>(rng() % 2001) - 1000);
    }
  return b;
}

std::vector<float> sum(const std::vector<std::vector<float>>& in) {
  std::vector<float> out = in[0];
  for (size_t r = 1; r < in.size(); ++r)
    for (size_t i = 0; i < out.size(); ++i) out[i] += in[r][i];
  return out;
}

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
