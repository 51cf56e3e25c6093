#include "transport/tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace unicc {

namespace {

constexpr uint64_t kHelloMagic = 0x336c6c65'68636375ull;  // "ucchell3": streams and the token check
// A legitimate peer answers each step at once; a stranger is given this long per connection.
constexpr int64_t kHandshakeMs = 5000;

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Buffer sizes stay Linux's: a fixed SO_SNDBUF/SO_RCVBUF would switch off its autotuning, which
// grows them to the bandwidth-delay product by itself. The part not yet sent is capped instead
// (tcp.h: kNotSentLowatBytes).
void tune(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &kNotSentLowatBytes, sizeof(kNotSentLowatBytes));
}

// Starts a non-blocking connect and waits for it until the deadline: "" when connected, else why
// not (*expired when the deadline came first).
std::string connect_by(int fd, const sockaddr_storage& ss, socklen_t len, int64_t deadline_ms, bool* expired) {
  set_nonblocking(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0) return "";
  if (errno != EINPROGRESS && errno != EINTR) return errno_text();
  const int64_t left = deadline_ms - now_ms();
  if (left <= 0 || !wait_fd(fd, POLLOUT, static_cast<int>(left))) {
    *expired = true;
    return "timed out";
  }
  int err = 0;
  socklen_t elen = sizeof(err);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  return err ? std::strerror(err) : "";
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

// Sends all of data on a non-blocking fd, or fails at the deadline or on an error.
bool write_all(int fd, const void* data, size_t n, int64_t deadline_ms) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k > 0) { p += k; n -= static_cast<size_t>(k); continue; }
    if (k < 0 && errno == EINTR) continue;
    if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0 || !wait_fd(fd, POLLOUT, static_cast<int>(left))) return false;
  }
  return true;
}

// Reads up to n bytes until they are in, the peer closes, or the deadline passes; returns how many came.
size_t read_upto(int fd, void* data, size_t n, int64_t deadline_ms) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < n) {
    const ssize_t k = recv(fd, p + got, n - got, 0);
    if (k > 0) { got += static_cast<size_t>(k); continue; }
    if (k == 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0 || !wait_fd(fd, POLLIN, static_cast<int>(left))) break;
  }
  return got;
}

void random_nonce(unsigned char* out) {
  size_t got = 0;
  while (got < kNonceBytes) {
    const ssize_t k = getrandom(out + got, kNonceBytes - got, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw CommError("cannot get random bytes for the job-token check: " + errno_text());
    got += static_cast<size_t>(k);
  }
}

std::string peer_address(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

FrameCheck check_frame_header(const FrameHeader& h, uint32_t seq, uint32_t hash, size_t chunks) {
  if (h.type == kFrameAbort) return FrameCheck::kAbort;
  if (h.type != kFrameData) return FrameCheck::kCorrupt;
  if (h.seq != seq || h.hash != hash || h.index >= chunks) return FrameCheck::kMismatch;
  return FrameCheck::kData;
}

const char* hello_check_text(HelloCheck c) {
  switch (c) {
    case HelloCheck::kOk: return "ok";
    case HelloCheck::kTruncated: return "it sent a short hello (or none in time)";
    case HelloCheck::kStranger: return "it did not speak the unicc rank protocol";
    case HelloCheck::kOtherJob: return "its hello belongs to another job";
    case HelloCheck::kNotForMe: return "its hello is addressed to another rank";
    case HelloCheck::kBadRank: return "its hello names a rank outside the job";
    case HelloCheck::kBadStream: return "its hello names a stream beyond the limit";
  }
  return "bad hello";
}

HelloCheck parse_hello(const void* bytes, size_t len, uint64_t job_key, int my_rank, int world_size, Hello* out) {
  if (len < sizeof(Hello)) return HelloCheck::kTruncated;
  Hello h;
  std::memcpy(&h, bytes, sizeof(h));
  if (h.magic != kHelloMagic) return HelloCheck::kStranger;
  if (h.job_key != job_key) return HelloCheck::kOtherJob;
  if (h.to != static_cast<uint32_t>(my_rank)) return HelloCheck::kNotForMe;
  if (world_size <= 0 || h.from >= static_cast<uint32_t>(world_size) || h.from == h.to) return HelloCheck::kBadRank;
  if (h.stream >= kMaxStreams) return HelloCheck::kBadStream;
  *out = h;
  return HelloCheck::kOk;
}

uint64_t hello_proof(const SipKey& key, char direction, const Hello& h, const unsigned char* acceptor_nonce) {
  // Fixed little-endian layout: direction | job key | from | to | stream | dialer nonce | acceptor nonce.
  unsigned char m[1 + 8 + 4 + 4 + 4 + 2 * kNonceBytes];
  size_t o = 0;
  m[o++] = static_cast<unsigned char>(direction);
  for (int i = 0; i < 8; ++i) m[o++] = static_cast<unsigned char>(h.job_key >> (8 * i));
  for (int i = 0; i < 4; ++i) m[o++] = static_cast<unsigned char>(h.from >> (8 * i));
  for (int i = 0; i < 4; ++i) m[o++] = static_cast<unsigned char>(h.to >> (8 * i));
  for (int i = 0; i < 4; ++i) m[o++] = static_cast<unsigned char>(h.stream >> (8 * i));
  std::memcpy(m + o, h.nonce, kNonceBytes);
  std::memcpy(m + o + kNonceBytes, acceptor_nonce, kNonceBytes);
  return siphash24(key, m, sizeof(m));
}

const char* accept_handshake(int fd, uint64_t job_key, const SipKey& key, int my_rank, int world_size,
                             int64_t deadline_ms, int* peer_rank, int* stream) {
  unsigned char bytes[sizeof(Hello)];
  Hello h{};
  const HelloCheck c = parse_hello(bytes, read_upto(fd, bytes, sizeof(bytes), deadline_ms), job_key, my_rank,
                                   world_size, &h);
  if (c != HelloCheck::kOk) return hello_check_text(c);
  unsigned char nonce[kNonceBytes];
  random_nonce(nonce);
  if (!write_all(fd, nonce, sizeof(nonce), deadline_ms)) return "it went away during the job-token check";
  uint64_t proof = 0;
  if (read_upto(fd, &proof, sizeof(proof), deadline_ms) != sizeof(proof))
    return "it gave no proof of the job token in time";
  if (proof != hello_proof(key, 'D', h, nonce)) return "wrong proof of the job token";
  const uint64_t mine = hello_proof(key, 'A', h, nonce);
  if (!write_all(fd, &mine, sizeof(mine), deadline_ms)) return "it went away during the job-token check";
  *peer_rank = static_cast<int>(h.from);
  *stream = static_cast<int>(h.stream);
  return nullptr;
}

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int rc;
  do rc = poll(&p, 1, timeout_ms); while (rc < 0 && errno == EINTR);
  return rc > 0;
}

Conn::Conn(int fd, int peer_rank, std::string peer_label)
    : fd_(fd), peer_rank_(peer_rank), label_(std::move(peer_label)) {
  set_nonblocking(fd_);
  tune(fd_);  // every connection, dialled or accepted, once it is a peer's
}

Conn::~Conn() {
  if (fd_ >= 0) close(fd_);
}

void Conn::send_abort(uint32_t seq, const std::string& why) {
  if (aborted_) return;
  aborted_ = true;
  // Into whatever room the buffer has: under the cap on unsent bytes, a stream whose peer stopped
  // reading is never writable, and the abort would wait out its second while the peers time out.
  const int uncapped = INT_MAX;
  setsockopt(fd_, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &uncapped, sizeof(uncapped));
  const int64_t deadline = now_ms() + 1000;
  std::vector<char> pad(unsent_in_frame, 0);
  std::string text = why.substr(0, kMaxAbortText);
  FrameHeader h{kFrameAbort, seq, 0, static_cast<uint32_t>(text.size())};
  if (write_all(fd_, pad.data(), pad.size(), deadline) && write_all(fd_, &h, sizeof(h), deadline))
    write_all(fd_, text.data(), text.size(), deadline);
  unsent_in_frame = 0;
  shutdown(fd_, SHUT_WR);
}

Listener::Listener(const std::string& addr) {
  // A rank listens on the address it is told (UNICC_HOST_ADDR, the interface's) or the one it
  // reaches the store from.
  const std::string hint = " (is that an address of this host? set UNICC_HOST_ADDR or --rendezvous-addr)";
  socklen_t len = 0;
  sockaddr_storage ss{};
  try {
    ss = resolve(addr, 0, &len);
  } catch (const CommError& e) {
    throw CommError("cannot listen: " + std::string(e.what()) + hint);
  }
  fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw CommError("cannot create a TCP socket: " + errno_text());
  if (bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(fd_, 128) != 0) {
    const std::string why = errno_text();
    close(fd_);
    throw CommError("cannot listen on " + addr + ": " + why + hint);
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

int Listener::accept_peer(uint64_t job_key, const SipKey& key, int my_rank, int world_size, int64_t deadline_ms,
                          int* peer_rank, int* stream) {
  for (;;) {
    const int64_t left = deadline_ms - now_ms();
    if (left <= 0) return -1;
    if (!wait_fd(fd_, POLLIN, static_cast<int>(left))) continue;
    sockaddr_storage from{};
    socklen_t from_len = sizeof(from);
    const int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&from), &from_len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    const char* refused = accept_handshake(fd, job_key, key, my_rank, world_size,
                                           std::min(deadline_ms, now_ms() + kHandshakeMs), peer_rank, stream);
    if (!refused) return fd;
    close(fd);
    std::fprintf(stderr, "unicc: rank %d dropped a connection from %s: %s\n", my_rank, peer_address(from).c_str(),
                 refused);
  }
}

int connect_peer(const std::string& addr, int port, uint64_t job_key, const SipKey& key, int my_rank,
                 int peer_rank, int stream, int64_t deadline_ms, const std::string& peer_label) {
  socklen_t len = 0;
  const sockaddr_storage ss = resolve(addr, port, &len);
  const std::string where = peer_label + " at " + addr + ":" + std::to_string(port);
  const std::string no_answer = "no answer before the deadline (UNICC_TIMEOUT_S): its host may be unreachable, or "
                                "a firewall drops the connection";
  std::string last_error = no_answer;
  while (now_ms() < deadline_ms) {
    const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw CommError("cannot create a TCP socket: " + errno_text());
    bool expired = false;
    const std::string refused = connect_by(fd, ss, len, deadline_ms, &expired);
    if (expired) {
      close(fd);
      last_error = no_answer;
      break;
    }
    if (refused.empty()) {
      Hello h{kHelloMagic, job_key, static_cast<uint32_t>(my_rank), static_cast<uint32_t>(peer_rank),
              static_cast<uint32_t>(stream), 0, {}};
      random_nonce(h.nonce);
      unsigned char nonce[kNonceBytes];
      if (write_all(fd, &h, sizeof(h), deadline_ms) &&
          read_upto(fd, nonce, sizeof(nonce), deadline_ms) == sizeof(nonce)) {
        // The peer took our hello as one of its job's: from here a refusal is an answer, not bad luck.
        const uint64_t proof = hello_proof(key, 'D', h, nonce);
        uint64_t theirs = 0;
        const bool sent = write_all(fd, &proof, sizeof(proof), deadline_ms);
        const bool answered = sent && read_upto(fd, &theirs, sizeof(theirs), deadline_ms) == sizeof(theirs);
        if (answered && theirs == hello_proof(key, 'A', h, nonce)) return fd;
        close(fd);
        const std::string why = answered ? "it answered with a wrong proof of the job token"
                                         : "it ended the connection during the job-token check (it died, or it "
                                           "refused our proof)";
        throw CommError("rank " + std::to_string(my_rank) + " cannot join " + where + ": " + why +
                        ". Every rank of a job needs the same UNICC_JOB_TOKEN: `unicc run` sets one; with torchrun "
                        "or your own launcher, set the same value on every rank or on none.");
      }
      last_error = "hello not accepted (is another job's rank listening there?)";
    } else {
      last_error = refused;
    }
    close(fd);
    usleep(static_cast<useconds_t>(std::clamp<int64_t>(deadline_ms - now_ms(), 0, 50) * 1000));
  }
  throw CommError("rank " + std::to_string(my_rank) + " cannot connect to " + where + ": " + last_error +
                  ". Check that the hosts can reach each other (firewall, --network-interface).");
}

}  // namespace unicc
