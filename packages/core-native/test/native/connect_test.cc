// Listening on an address that is not this host's says what to set. Dialling a peer that never
// answers: the deadline holds, and the error names the peer. Both ends
// of a connection keep little unsent data queued in the kernel, and an abort still goes out at once
// to a peer that stopped reading.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/tcp.h>
#include <poll.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "transport/tcp.h"

namespace unicc {
namespace {

// A listener that never accepts, with its queue full: Linux then drops further SYNs, as a
// blackholed host does, and a blocking connect() would wait for minutes of SYN retries.
struct Blackhole {
  int fd = -1;
  int port = 0;
  std::vector<int> fillers;
  Blackhole() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd, 0);
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    for (int i = 0; i < 4; ++i) {  // fill the accept queue
      const int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      fillers.push_back(c);
    }
    usleep(100'000);
  }
  ~Blackhole() {
    for (int c : fillers) close(c);
    close(fd);
  }
};

int64_t ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
}

// One that does not resolve (a scope naming no interface: it fails without asking DNS) and one
// this host does not have (TEST-NET-1): either way the error says what to set.
TEST(Listen, AnAddressThatIsNotThisHostsSaysWhatToSet) {
  for (const char* addr : {"fe80::1%no-such-interface", "192.0.2.1"}) {
    try {
      Listener l(addr);
      FAIL() << "listened on " << addr;
    } catch (const CommError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(addr), std::string::npos) << what;
      EXPECT_NE(what.find("set UNICC_HOST_ADDR"), std::string::npos) << what;
    }
  }
}

TEST(Connect, HonoursTheDeadlineAgainstAPeerThatNeverAnswers) {
  Blackhole hole;
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t deadline = std::chrono::duration_cast<std::chrono::milliseconds>(t0.time_since_epoch()).count() + 1500;
  try {
    connect_peer("127.0.0.1", hole.port, 1, token_key(""), 0, 1, 0, deadline, "rank 1 (host b, pid 7)");
    FAIL() << "connected to a listener that never accepts";
  } catch (const CommError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 1 (host b, pid 7) at 127.0.0.1:" + std::to_string(hole.port)), std::string::npos) << what;
    EXPECT_NE(what.find("UNICC_TIMEOUT_S"), std::string::npos) << what;
  }
  EXPECT_LT(ms_since(t0), 4000);  // the deadline plus one handshake step, not minutes of SYN retries
}

int notsent_lowat(int fd) {
  int v = 0;
  socklen_t len = sizeof v;
  getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len);
  return v;
}

// Both ends of one loopback connection between rank 1 (dialler) and rank 0.
struct Pair {
  std::unique_ptr<Conn> dialler, acceptor;
  Pair() {
    Listener listener("127.0.0.1");
    const SipKey key = token_key("");
    const int64_t deadline = now_ms() + 5000;
    int accepted = -1, peer = -1, stream = -1;
    std::thread t([&] { accepted = listener.accept_peer(9, key, 0, 2, deadline, &peer, &stream); });
    const int dialled = connect_peer("127.0.0.1", listener.port(), 9, key, 1, 0, 0, deadline, "rank 0");
    t.join();
    dialler = std::make_unique<Conn>(dialled, 0, "rank 0");
    if (accepted >= 0) acceptor = std::make_unique<Conn>(accepted, peer, "rank 1");
  }
};

TEST(Connect, BothEndsCapWhatTheKernelQueuesUnsent) {
  const Pair pair;
  ASSERT_TRUE(pair.acceptor);
  EXPECT_EQ(pair.acceptor->peer_rank(), 1);
  EXPECT_EQ(notsent_lowat(pair.dialler->fd()), kNotSentLowatBytes);
  EXPECT_EQ(notsent_lowat(pair.acceptor->fd()), kNotSentLowatBytes);
}

// The peer stops reading (its host went dark, or it hangs): once the cap makes the stream
// unwritable, the abort must still go into the room the buffer has, not wait out its second.
TEST(Connect, AnAbortGoesOutAtOnceWhereThePeerStoppedReading) {
  const Pair pair;
  ASSERT_TRUE(pair.acceptor);
  const std::vector<char> block(1 << 20, 7);
  size_t sent = 0;
  for (;;) {
    const ssize_t k = write(pair.dialler->fd(), block.data(), block.size());
    if (k < 0) {
      ASSERT_EQ(errno, EAGAIN);
      if (!wait_fd(pair.dialler->fd(), POLLOUT, 200)) break;  // unwritable for good: the peer's window is full
      continue;
    }
    sent += static_cast<size_t>(k);
    ASSERT_LT(sent, size_t{1} << 30) << "the stream never stopped taking bytes";
  }
  // Mid-frame, as a collective is when it fails: the abort pads the frame out first.
  const size_t pad = 64 << 10;
  pair.dialler->unsent_in_frame = pad;
  sent += pad;
  const auto t0 = std::chrono::steady_clock::now();
  pair.dialler->send_abort(5, "rank 1 stops: a test");
  EXPECT_LT(ms_since(t0), 500);
  // Behind everything sent, the peer finds the abort frame and its reason.
  std::vector<char> got;
  got.reserve(sent + 4096);
  char buf[1 << 16];
  for (int64_t until = now_ms() + 10000; now_ms() < until;) {
    const ssize_t k = read(pair.acceptor->fd(), buf, sizeof buf);
    if (k == 0) break;
    if (k > 0) got.insert(got.end(), buf, buf + k);
    else wait_fd(pair.acceptor->fd(), POLLIN, 100);
  }
  ASSERT_GE(got.size(), sent + sizeof(FrameHeader));
  FrameHeader h;
  std::memcpy(&h, got.data() + sent, sizeof h);
  EXPECT_EQ(h.type, kFrameAbort);
  EXPECT_EQ(std::string(got.data() + sent + sizeof h, got.size() - sent - sizeof h), "rank 1 stops: a test");
}

}  // namespace
}  // namespace unicc
