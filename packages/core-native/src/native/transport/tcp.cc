#include "transport/tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace unicc {

namespace {

constexpr uint64_t kHelloMagic = 0x6f6c6c65'68636375ull;  // "ucchello"

struct Hello {
  uint64_t magic;
  uint64_t job_key;
  uint32_t from;
  uint32_t to;
  uint32_t stream;
  uint32_t reserved;
};

std::string errno_text() { return std::strerror(errno); }

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // Large buffers keep a pipelined ring busy across the bandwidth-delay product.
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

sockaddr_storage resolve(const std::string& addr, int port, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(addr.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0 || !res) throw CommError("cannot resolve address '" + addr + "': " + gai_strerror(rc));
  sockaddr_storage ss{};
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return ss;
}

// Blocking-style IO on a non-blocking fd, bounded by a deadline.
bool io_all(int fd, void* data, size_t n, bool writing, int64_t deadline_ms) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t k = writing ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
    if (k > 0) { p += k; n -= static_cast<size_t>(k); continue; }
    if (k == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0 || !wait_fd(fd, writing ? POLLOUT : POLLIN, static_cast<int>(left))) return false;
  }
  return true;
}

}  // namespace

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int rc;
  do rc = poll(&p, 1, timeout_ms); while (rc < 0 && errno == EINTR);
  return rc > 0;
}

Conn::Conn(int fd, int peer_rank, std::string peer_label)
    : fd_(fd), peer_rank_(peer_rank), label_(std::move(peer_label)) {
  set_nonblocking(fd_);
  tune(fd_);
}

Conn::~Conn() {
  if (fd_ >= 0) close(fd_);
}

void Conn::send_abort(uint32_t seq, const std::string& why) {
  if (aborted_) return;
  aborted_ = true;
  const int64_t deadline = now_ms() + 1000;
  std::vector<char> pad(unsent_in_frame, 0);
  std::string text = why.substr(0, kMaxAbortText);
  FrameHeader h{kFrameAbort, seq, 0, static_cast<uint32_t>(text.size())};
  if (io_all(fd_, pad.data(), pad.size(), true, deadline) && io_all(fd_, &h, sizeof(h), true, deadline))
    io_all(fd_, text.data(), text.size(), true, deadline);
  unsent_in_frame = 0;
  shutdown(fd_, SHUT_WR);
}

Listener::Listener(const std::string& addr) {
  socklen_t len = 0;
  sockaddr_storage ss = resolve(addr, 0, &len);
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw CommError("cannot create a TCP socket: " + errno_text());
  if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd_, 128) != 0) {
    const std::string why = errno_text();
    close(fd_);
    throw CommError("cannot listen on " + addr + ": " + why +
                    " (is that an address of this host? set UNICC_HOST_ADDR or --rendezvous-addr)");
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  set_nonblocking(fd_);
}

Listener::~Listener() {
  if (fd_ >= 0) close(fd_);
}

int Listener::accept_peer(uint64_t job_key, int my_rank, int world_size, int64_t deadline_ms,
                          int* peer_rank, int* stream) {
  for (;;) {
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0) return -1;
    if (!wait_fd(fd_, POLLIN, static_cast<int>(left))) continue;
    const int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    Hello h{};
    // A stranger gets a short read deadline and is dropped if it does not say the right thing.
    const int64_t hello_deadline = std::min(deadline_ms, now_ms() + 5000);
    if (io_all(fd, &h, sizeof(h), false, hello_deadline) && h.magic == kHelloMagic &&
        h.job_key == job_key && static_cast<int>(h.to) == my_rank && h.from < static_cast<uint32_t>(world_size) &&
        h.stream < kMaxStreams) {
      *peer_rank = static_cast<int>(h.from);
      *stream = static_cast<int>(h.stream);
      return fd;
    }
    close(fd);
  }
}

int connect_peer(const std::string& addr, int port, uint64_t job_key, int my_rank, int peer_rank, int stream,
                 int64_t deadline_ms, const std::string& peer_label) {
  socklen_t len = 0;
  const sockaddr_storage ss = resolve(addr, port, &len);
  std::string last_error = "timed out";
  while (now_ms() < deadline_ms) {
    const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw CommError("cannot create a TCP socket: " + errno_text());
    tune(fd);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0) {
      set_nonblocking(fd);
      Hello h{kHelloMagic, job_key, static_cast<uint32_t>(my_rank), static_cast<uint32_t>(peer_rank),
              static_cast<uint32_t>(stream), 0};
      if (io_all(fd, &h, sizeof(h), true, deadline_ms)) return fd;
      last_error = "hello not accepted";
    } else {
      last_error = errno_text();
    }
    close(fd);
    usleep(50'000);
  }
  throw CommError("rank " + std::to_string(my_rank) + " cannot connect to " + peer_label + " at " + addr +
                  ":" + std::to_string(port) + ": " + last_error +
                  ". Check that the hosts can reach each other (firewall, --network-interface).");
}

}  // namespace unicc
