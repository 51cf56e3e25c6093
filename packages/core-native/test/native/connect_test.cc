// Dialling a peer that never answers: the deadline holds, and the error names the peer. Both ends
// of a connection keep little unsent data queued in the kernel.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/tcp.h>

#include <chrono>
#include <thread>
#include <vector>

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

TEST(Connect, BothEndsCapWhatTheKernelQueuesUnsent) {
  Listener listener("127.0.0.1");
  const SipKey key = token_key("");
  const int64_t deadline =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count() + 5000;
  int accepted = -1, peer = -1, stream = -1;
  std::thread acceptor([&] { accepted = listener.accept_peer(9, key, 0, 2, deadline, &peer, &stream); });
  const int dialled = connect_peer("127.0.0.1", listener.port(), 9, key, 1, 0, 0, deadline, "rank 0");
  acceptor.join();
  ASSERT_GE(accepted, 0);
  EXPECT_EQ(peer, 1);
  const Conn dialler(dialled, 0, "rank 0"), acceptor_end(accepted, 1, "rank 1");
  EXPECT_EQ(notsent_lowat(dialler.fd()), kNotSentLowatBytes);
  EXPECT_EQ(notsent_lowat(acceptor_end.fd()), kNotSentLowatBytes);
}

}  // namespace
}  // namespace unicc
