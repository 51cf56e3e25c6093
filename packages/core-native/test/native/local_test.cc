// Collectives inside one host over a real shared-memory group: simulated local ranks as threads,
// each with its own mapping of one segment, on random data against a reference reduction; and
// the split one-round path that a caller which must not block uses (start, arrived, finish).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "algorithms/local.h"
#include "common/error.h"

namespace unicc {
namespace {

constexpr size_t kPiece = 4096;  // shared-memory piece; also where the one-round path ends
constexpr size_t kSmall = 4096;

struct Host {
  std::vector<std::unique_ptr<ShmGroup>> groups;  // one per local rank, each its own mapping
  explicit Host(int L, int timeout_ms = 10000) {
    static std::atomic<int> serial{0};
    const std::string name = "/unicc-test-" + std::to_string(getpid()) + "-" + std::to_string(serial++);
    std::vector<ShmGroup::Member> members;
    for (int r = 0; r < L; ++r) members.push_back({"rank " + std::to_string(r)});
    for (int r = 0; r < L; ++r) groups.push_back(std::make_unique<ShmGroup>(name, r == 0 ? ShmGroup::Open::Create : ShmGroup::Open::Existing, r, members, kPiece, timeout_ms));
    groups[0]->unlink();
  }
  // Runs fn(local rank, its group) on one thread per local rank.
  template <typename F>
  void run(F fn) {
    std::vector<std::thread> threads;
    for (size_t r = 0; r < groups.size(); ++r) threads.emplace_back([&, r] { fn(static_cast<int>(r), *groups[r]); });
    for (auto& t : threads) t.join();
  }
};

Desc allreduce_desc(uint32_t seq, size_t count) {
  Desc d;
  d.seq = seq;
  d.coll = static_cast<uint8_t>(Coll::Allreduce);
  d.count = count;
  return d;
}

std::vector<std::vector<float>> random_inputs(int L, size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<std::vector<float>> in(L, std::vector<float>(n));
  for (auto& v : in)
    for (auto& x : v) x = u(rng);
  return in;
}

void expect_sums(const std::vector<std::vector<float>>& in, const std::vector<std::vector<float>>& out, size_t n) {
  const int L = static_cast<int>(in.size());
  for (size_t i = 0; i < n; ++i) {
    double ref = 0, mag = 0;
    for (int r = 0; r < L; ++r) ref += in[r][i], mag += std::fabs(in[r][i]);
    ASSERT_NEAR(out[0][i], ref, (L + 1) * mag * 6e-8) << "element " << i << " of " << n;
  }
  for (int r = 1; r < L; ++r)
    ASSERT_EQ(std::memcmp(out[r].data(), out[0].data(), n * sizeof(float)), 0) << "rank " << r << " differs, n " << n;
}

// Sizes around the switch from one round (every rank reduces everything) to owner rounds, and
// some that take several pieces, back to back on one group so rounds also wrap their buffers.
TEST(LocalAllreduce, MatchesReferenceAroundTheSmallSwitch) {
  std::mt19937_64 rng(7);
  const size_t at = kSmall / sizeof(float);
  const std::vector<size_t> sizes{1, 7, at - 1, at, at + 1, 3 * at + 5, 17 * at};
  for (int L : {2, 3, 4}) {
    Host host(L);
    uint32_t seq = 0;
    for (size_t n : sizes) {
      const auto in = random_inputs(L, n, rng);
      auto out = in;
      host.run([&](int r, ShmGroup& g) {
        local_allreduce(g, allreduce_desc(seq, n), out[r].data(), n, DType::F32, RedOp::Sum, kSmall, 1);
      });
      ++seq;
      expect_sums(in, out, n);
    }
  }
}

// A client's buffer (here this process's own memory, reached as another process's would be, by
// cross-memory attach, at an odd address) ends bit-identical to the same allreduce on local
// memory, averages included, at sizes from one round to many pieces; a broadcast likewise.
TEST(LocalAllreduce, ClientMemoryMatchesLocalMemory) {
  std::mt19937_64 rng(13);
  const size_t at = kSmall / sizeof(float);
  for (int L : {2, 3}) {
    Host host(L);
    uint32_t seq = 0;
    for (size_t n : {size_t{1}, at - 1, 3 * at + 5, 17 * at}) {
      for (RedOp op : {RedOp::Sum, RedOp::Avg}) {
        const auto in = random_inputs(L, n, rng);
        auto local = in;
        std::vector<std::vector<char>> client(L, std::vector<char>(n * sizeof(float) + 1));
        for (int r = 0; r < L; ++r) std::memcpy(client[r].data() + 1, in[r].data(), n * sizeof(float));
        host.run([&](int r, ShmGroup& g) {
          local_allreduce(g, allreduce_desc(seq, n), local[r].data(), n, DType::F32, op, kSmall, op == RedOp::Avg ? L : 1);
          local_allreduce(g, allreduce_desc(seq + 1, n), UserBuffer(client[r].data() + 1, getpid()), n, DType::F32, op,
                          kSmall, op == RedOp::Avg ? L : 1);
        });
        seq += 2;
        if (op == RedOp::Sum) expect_sums(in, local, n);
        for (int r = 0; r < L; ++r)
          ASSERT_EQ(std::memcmp(client[r].data() + 1, local[0].data(), n * sizeof(float)), 0) << "rank " << r << ", n " << n;
      }
    }
    const size_t bytes = 5 * kSmall + 3;
    std::vector<std::vector<char>> bufs(L, std::vector<char>(bytes));
    for (auto& b : bufs)
      for (auto& c : b) c = static_cast<char>(rng());
    const std::vector<char> root = bufs[L - 1];
    host.run([&](int r, ShmGroup& g) {
      Desc d;
      d.seq = seq;
      d.coll = static_cast<uint8_t>(Coll::Broadcast);
      d.count = bytes;
      d.root = L - 1;
      local_broadcast(g, d, UserBuffer(bufs[r].data(), getpid()), bytes, L - 1);
    });
    for (int r = 0; r < L; ++r) ASSERT_EQ(bufs[r], root) << "rank " << r;
  }
}

// What the bridge checks before a request on a client's memory starts: both ends of the span
// reachable; a probe of memory both sides map.
TEST(ClientMemory, SpansAndProbesAreChecked) {
  std::vector<char> mine(64, 'x');
  const auto at = reinterpret_cast<uintptr_t>(mine.data());
  EXPECT_EQ(check_client_span(getpid(), at, mine.size()), "");
  EXPECT_NE(check_client_span(getpid(), 8, 16).find("Bad address"), std::string::npos);
  EXPECT_NE(check_client_span(getpid(), at, SIZE_MAX).find("wraps"), std::string::npos);
  EXPECT_EQ(probe_client_memory(getpid(), at, mine.data(), 12), "");
  const std::vector<char> other(12, 'y');
  EXPECT_NE(probe_client_memory(getpid(), at, other.data(), 12).find("other bytes"), std::string::npos);
  char c = 0;
  EXPECT_THROW(UserBuffer(reinterpret_cast<void*>(8), getpid()).read(0, &c, 1), CommError);
}

// The last rank comes late: the others' arrived() says no (they would leave the rest to another
// thread) until it has posted, then yes; finish gives everybody the reference result.
TEST(LocalAllreduce, SplitRoundWaitsForTheLateRank) {
  std::mt19937_64 rng(11);
  for (int L : {2, 3, 4}) {
    Host host(L);
    for (size_t n : {size_t{1}, kSmall / sizeof(float)}) {
      const auto in = random_inputs(L, n, rng);
      auto out = in;
      std::atomic<int> refused{0};
      host.run([&](int r, ShmGroup& g) {
        const Desc d = allreduce_desc(static_cast<uint32_t>(n), n);
        EXPECT_TRUE(local_small(g, n * sizeof(float), kSmall));
        if (r == L - 1) {
          while (refused.load() < L - 1) std::this_thread::yield();
        }
        EXPECT_TRUE(g.round_free());
        const uint64_t R = local_small_start(g, d, out[r].data(), n * sizeof(float));
        if (r != L - 1) {
          EXPECT_FALSE(g.arrived(R, ShmGroup::IN, 2000));
          ++refused;
        }
        local_small_finish(g, R, out[r].data(), n, DType::F32, RedOp::Sum, 1);
        EXPECT_TRUE(g.arrived(R, ShmGroup::IN, 0));
      });
      expect_sums(in, out, n);
    }
  }
}

// A rank that gives up (a dying peer seen, a timeout) wakes the others wherever they wait: in
// the spin, yielding, or asleep on the futex; each fails with the same message.
TEST(LocalAllreduce, AbortReachesEveryWaiter) {
  for (int L : {2, 4}) {
    for (int delay_ms : {0, 200}) {
      Host host(L);
      std::atomic<int> failed{0};
      const auto t0 = std::chrono::steady_clock::now();
      host.run([&](int r, ShmGroup& g) {
        std::vector<float> buf(16, 1.0f);
        if (r == 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
          g.abort("rank 0 gave up");
          return;
        }
        try {
          local_allreduce(g, allreduce_desc(0, buf.size()), buf.data(), buf.size(), DType::F32, RedOp::Sum, kSmall, 1);
        } catch (const CommError& e) {
          EXPECT_STREQ(e.what(), "rank 0 gave up");
          ++failed;
        }
      });
      EXPECT_EQ(failed.load(), L - 1);
      EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(delay_ms + 1000));
    }
  }
}

}  // namespace
}  // namespace unicc

namespace unicc {
namespace {

// A process that holds no name for the segment joins it through its holder's descriptor (as a
// bridge's client joins the client lane through /proc/PID/fd/N) and takes over that local rank:
// the rank's collectives then run on the joined mapping, and its labels get each rank's pid from
// the segment (here: a peer that never comes, which only the joined rank waits for).
TEST(ShmGroupJoin, TakesOverARankThroughItsHoldersDescriptor) {
  std::mt19937_64 rng(13);
  const int L = 3;
  Host host(L);
  std::vector<ShmGroup::Member> members;
  for (int r = 0; r < L; ++r) members.push_back({"rank " + std::to_string(r) + " (host h"});
  const std::string path = "/proc/self/fd/" + std::to_string(host.groups[L - 1]->fd());
  auto joined = std::make_unique<ShmGroup>(path, ShmGroup::Open::Join, L - 1, members, kPiece, 500);
  std::swap(host.groups[L - 1], joined);  // the holder's mapping stays alive, unused, as in a bridge

  const size_t n = 999;
  const auto in = random_inputs(L, n, rng);
  auto out = in;
  host.run([&](int r, ShmGroup& g) {
    local_allreduce(g, allreduce_desc(0, n), out[r].data(), n, DType::F32, RedOp::Sum, kSmall, 1);
  });
  expect_sums(in, out, n);

  std::vector<float> buf(8);
  try {
    local_allreduce(*host.groups[L - 1], allreduce_desc(1, buf.size()), buf.data(), buf.size(), DType::F32, RedOp::Sum,
                    kSmall, 1);
    FAIL() << "a collective without its peers ended";
  } catch (const CommError& e) {
    const std::string pid = std::to_string(getpid());
    EXPECT_NE(std::string(e.what()).find("rank 0 (host h, pid " + pid + ") did not reach the collective"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("detected by rank 2 (host h, pid " + pid + ")"), std::string::npos) << e.what();
  }
}

TEST(ShmGroupJoin, ABadPathSaysWhatCouldNotBeOpened) {
  const std::vector<ShmGroup::Member> members{{"rank 0 (host h"}, {"rank 1 (host h"}};
  try {
    ShmGroup g("/proc/self/fd/999999", ShmGroup::Open::Join, 1, members, kPiece, 1000);
    FAIL() << "joined a segment that is not there";
  } catch (const CommError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open shared memory /proc/self/fd/999999 on rank 1 (host h, pid "),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace unicc
