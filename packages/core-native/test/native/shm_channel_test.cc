// The shared-memory channel: the executor's schedules over it on random data (messages many
// times its ring), an abort that reaches the peer behind the padded frame, a peer process that
// dies (found at once, not at the timeout), a peer that never comes, and no name left behind.
// Communicators on a flat ring whose hosts have two ranks each join those by shared memory.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "algorithms/schedules.h"
#include "common/clock.h"
#include "job.h"
#include "mesh.h"
#include "transport/shm_channel.h"
#include "transport/tcp.h"

namespace unicc {
namespace {

std::string pair_name(int a, int b) {
  return "/unicc-shm-channel-test-" + std::to_string(getpid()) + "-" + std::to_string(a) + "-" + std::to_string(b);
}

// Every pair of n ranks (threads of this process) joined by a shared-memory channel; [rank][peer].
std::vector<std::vector<std::unique_ptr<ShmChannel>>> shm_mesh(int n) {
  std::vector<std::vector<std::unique_ptr<ShmChannel>>> ch(n);
  for (auto& row : ch) row.resize(n);
  for (int a = 0; a < n; ++a)
    for (int b = a + 1; b < n; ++b) {
      ch[a][b] = std::make_unique<ShmChannel>(pair_name(a, b), a, b, getpid(), "rank " + std::to_string(b));
      ch[b][a] = std::make_unique<ShmChannel>(pair_name(a, b), b, a, getpid(), "rank " + std::to_string(a));
      ch[a][b]->make();
      ch[b][a]->connect(now_ms() + 5000);  // the upper half first
      ch[a][b]->connect(now_ms() + 5000);
    }
  return ch;
}

size_t names_left() {
  size_t n = 0;
  const std::string prefix = "unicc-shm-channel-test-" + std::to_string(getpid());
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) n += std::string(e->d_name).rfind(prefix, 0) == 0;
    closedir(d);
  }
  return n;
}

TEST(ShmChannel, CarriesTheSchedulesOnRandomDataAndLeavesNoName) {
  // 3M floats: each message of the ring is a few times the channel's ring.
  const std::vector<size_t> counts = {0, 1, 1001, 3000000, 7};
  for (int n : {2, 3, 5}) {
    auto ch = shm_mesh(n);
    EXPECT_EQ(names_left(), 0u);
    for (Wire wire : {Wire::Exact, Wire::F16}) {
      auto bufs = test::random_inputs(n, counts, static_cast<uint64_t>(n) * 7 + static_cast<uint64_t>(wire));
      std::vector<std::vector<float>> want;
      for (auto& k : bufs) want.push_back(test::sum(k));
      std::vector<std::string> errors(n);
      std::vector<std::thread> threads;
      for (int r = 0; r < n; ++r)
        threads.emplace_back([&, r] {
          std::vector<Channel*> peers;
          for (auto& c : ch[r]) peers.push_back(c.get());
          try {
            for (size_t k = 0; k < counts.size(); ++k) {
              Desc d;
              d.seq = static_cast<uint32_t>(k);
              d.count = counts[k];
              const ExecContext cx{d, DType::F32, RedOp::Sum, wire, 5000, nullptr, "rank " + std::to_string(r)};
              // Recursive doubling keeps 16-bit ranks equal only in groups of a power of two.
              const Schedule s = k % 2 || wire != Wire::Exact ? ring_allreduce_schedule(n, r, counts[k], 4, pipeline_chunk_elems(1 << 20, 1, (counts[k] + n - 1) / n, 4))
                                       : recursive_doubling_allreduce_schedule(n, r, counts[k], 4, pipeline_chunk_elems(1 << 20, 1, counts[k], 4));
              execute(s, reinterpret_cast<char*>(bufs[k][r].data()), peers, cx);
            }
          } catch (const std::exception& e) {
            errors[r] = e.what();
          }
        });
      for (auto& t : threads) t.join();
      for (int r = 0; r < n; ++r) {
        ASSERT_EQ(errors[r], "") << n << " ranks";
        for (size_t k = 0; k < counts.size(); ++k) {
          if (wire == Wire::Exact) ASSERT_EQ(bufs[k][r], want[k]) << "rank " << r << ", collective " << k;
          else ASSERT_EQ(bufs[k][r], bufs[k][0]) << "rank " << r << ", collective " << k << ": ranks differ";
        }
      }
    }
  }
}

// As from a TCP connection (Conn::send_abort): the rest of the frame being written reads as
// zeros, then comes an abort frame with the reason; after it the channel is lost.
TEST(ShmChannel, AnAbortArrivesAfterTheFrameItCutShort) {
  auto ch = shm_mesh(2);
  ShmChannel& a = *ch[0][1];
  ShmChannel& b = *ch[1][0];
  const FrameHeader data{kFrameData, 7, 0x1234, 100, 0};
  const char part[40] = "forty bytes of a hundred-byte payload..";
  const iovec iov[2] = {{const_cast<FrameHeader*>(&data), sizeof data}, {const_cast<char*>(part), sizeof part}};
  ASSERT_EQ(a.write(0, iov, 2), sizeof data + sizeof part);
  a.set_unsent(0, 100 - sizeof part);
  a.send_abort(7, "rank 0 failed: out of memory");

  std::vector<char> got(sizeof data + 100 + sizeof(FrameHeader) + std::strlen("rank 0 failed: out of memory"));
  for (size_t at = 0; at < got.size();) {
    const size_t k = b.read(0, got.data() + at, got.size() - at);
    ASSERT_GT(k, 0u) << "after " << at << " bytes";
    at += k;
  }
  EXPECT_EQ(std::memcmp(got.data(), &data, sizeof data), 0);
  EXPECT_EQ(std::memcmp(got.data() + sizeof data, part, sizeof part), 0);
  EXPECT_EQ(std::vector<char>(got.begin() + sizeof data + sizeof part, got.begin() + sizeof data + 100),
            std::vector<char>(100 - sizeof part, 0));
  FrameHeader abort{};
  std::memcpy(&abort, got.data() + sizeof data + 100, sizeof abort);
  EXPECT_EQ(abort.type, kFrameAbort);
  EXPECT_EQ(abort.seq, 7u);
  EXPECT_EQ(std::string(got.data() + sizeof data + 100 + sizeof abort, abort.len), "rank 0 failed: out of memory");
  EXPECT_THROW(b.read(0, got.data(), 1), ChannelLost);
}

// A process that dies mid-frame: what it wrote is read, then the channel is lost at once (its
// pidfd wakes the reader), long before any deadline.
TEST(ShmChannel, APeerProcessThatDiesIsLostAtOnce) {
  const std::string name = pair_name(0, 1);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      ShmChannel mine(name, 1, 0, getppid(), "rank 0");
      mine.connect(now_ms() + 5000);
      const char bytes[10] = "123456789";
      const iovec iov{const_cast<char*>(bytes), sizeof bytes};
      if (mine.write(0, &iov, 1) != sizeof bytes) _exit(3);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } catch (...) {
      _exit(2);
    }
    _exit(0);
  }
  ShmChannel ch(name, 0, 1, child, "rank 1");
  ch.make();
  ch.connect(now_ms() + 5000);
  const int64_t t0 = now_ms();
  std::string got, lost;
  try {
    while (now_ms() - t0 < 5000) {
      char buf[64];
      const size_t k = ch.read(0, buf, sizeof buf);
      got.append(buf, k);
      if (k > 0) continue;
      Waiter w;
      ch.arm(0, true, false, w);
      w.wait(1000);
    }
  } catch (const ChannelLost& e) {
    lost = e.what();
  }
  EXPECT_EQ(lost, "its process exited");
  EXPECT_EQ(got, std::string("123456789", 10));
  EXPECT_LT(now_ms() - t0, 2000);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(names_left(), 0u);
}

TEST(ShmChannel, APeerThatNeverComesIsNamedAtTheDeadlineAndTheNamesGo) {
  {
    ShmChannel ch(pair_name(0, 1), 0, 1, getpid(), "rank 1 (host b, pid 42)");
    ch.make();
    EXPECT_EQ(names_left(), 3u);  // the segment and both doorbells
    try {
      ch.connect(now_ms() + 300);
      FAIL() << "joined a channel nobody opened";
    } catch (const CommError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("rank 0, shared-memory channel /dev/shm" + pair_name(0, 1) + " to rank 1 (host b, pid 42): waited for rank 1 (host b, pid 42) to open its end"), std::string::npos) << what;
      EXPECT_NE(what.find("Did it start?"), std::string::npos) << what;
    }
  }
  EXPECT_EQ(names_left(), 0u);
}

}  // namespace
}  // namespace unicc
