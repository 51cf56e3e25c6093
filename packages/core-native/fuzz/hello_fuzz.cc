// libFuzzer harness: the bytes a stranger sends to a rank's listener. Runs the acceptor's real
// handshake (accept_handshake: hello parsing, nonce, proof check) over a socketpair carrying the
// input, then checks what it decided against parse_hello on the same bytes.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/clock.h"
#include "transport/tcp.h"

namespace {
constexpr uint64_t kJobKey = 0x0123456789abcdefull;  // seeds in corpus/hello carry it
constexpr int kMyRank = 1, kWorld = 4;
const unicc::SipKey kKey = unicc::token_key("fuzz-token");
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The pure parser first: never reads past `size`, and accepts only what it promises.
  unicc::Hello h{};
  const unicc::HelloCheck c = unicc::parse_hello(data, size, kJobKey, kMyRank, kWorld, &h);
  if (c == unicc::HelloCheck::kOk && (h.to != kMyRank || h.from >= kWorld || h.from == h.to || h.job_key != kJobKey ||
                                      h.stream >= unicc::kMaxStreams))
    std::abort();

  // Then the handshake itself, with the input as everything the peer ever sends.
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  const size_t n = size < 4096 ? size : 4096;  // within the socket buffer, so one write is enough
  if (n && write(sv[1], data, n) != static_cast<ssize_t>(n)) std::abort();
  shutdown(sv[1], SHUT_WR);
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  int peer = -1, stream = -1;
  const char* refused =
      unicc::accept_handshake(sv[0], kJobKey, kKey, kMyRank, kWorld, unicc::now_ms() + 1000, &peer, &stream);
  // The proof depends on a nonce made fresh inside: no input can carry it, so nobody gets in.
  if (!refused) std::abort();
  if (c != unicc::HelloCheck::kOk && std::strcmp(refused, unicc::hello_check_text(c)) != 0) std::abort();
  close(sv[0]);
  close(sv[1]);
  return 0;
}
