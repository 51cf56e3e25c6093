#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/siphash.h"

namespace unicc {

// Frames on a rank-to-rank TCP connection. Every chunk travels with this header so that the
// receiver can check it belongs to the collective it expects, and so that a failing rank can
// tell its neighbours why before it goes.
struct FrameHeader {
  uint32_t type;  // kData or kAbort
  uint32_t seq;   // collective sequence number
  uint32_t hash;  // Desc::hash() of the sender's request
  uint32_t len;   // payload bytes
  uint32_t index; // which chunk of the collective's schedule (streams may deliver out of order)
};
constexpr uint32_t kFrameData = 0x44434355;   // "UCCD"
constexpr uint32_t kFrameAbort = 0x41434355;  // "UCCA"
constexpr uint32_t kMaxAbortText = 4096;
constexpr uint32_t kMaxStreams = 16;  // TCP streams per pair of neighbours
// What a rank-to-rank socket holds beyond the bytes in flight (TCP_NOTSENT_LOWAT). Linux's
// autotuning lets a stream queue megabytes there, and the executor hands each send to the first
// stream with room: a stream whose flow is slow then took as much as the others, and a step
// ended when its queue drained alone while the other streams idled. With little queued, a stream
// has room only once it has nearly caught up, so the streams finish together.
constexpr int kNotSentLowatBytes = 128 << 10;

// What a received header means for the collective of request (seq, hash) that expects `chunks`
// chunks: kData promises h.index < chunks, so the receiver may look the chunk up. Pure, so that
// the receiver and the fuzz harness run the same check.
enum class FrameCheck { kData, kAbort, kCorrupt, kMismatch };
FrameCheck check_frame_header(const FrameHeader& h, uint32_t seq, uint32_t hash, size_t chunks);

// The handshake on a new rank-to-rank connection, before any frame:
//   dialer   -> acceptor  Hello (magic, job key, from, to, stream, dialer nonce)
//   acceptor -> dialer    acceptor nonce
//   dialer   -> acceptor  proof 'D' = SipHash(token key, 'D', hello fields, both nonces)
//   acceptor -> dialer    proof 'A' (same, direction 'A')
// The acceptor reveals nothing keyed before the dialer has proved the token; fresh nonces on both
// sides keep a recorded proof from being replayed, and the direction byte keeps one side's proof
// from being reflected back as the other's.
constexpr size_t kNonceBytes = 16;
struct Hello {
  uint64_t magic;
  uint64_t job_key;
  uint32_t from;
  uint32_t to;
  uint32_t stream;
  uint32_t reserved;
  unsigned char nonce[kNonceBytes];
};
static_assert(sizeof(Hello) == 48, "Hello travels as raw bytes");

enum class HelloCheck { kOk, kTruncated, kStranger, kOtherJob, kNotForMe, kBadRank, kBadStream };
const char* hello_check_text(HelloCheck c);
// Validates the first bytes a connection sent as a Hello of this job addressed to my_rank.
HelloCheck parse_hello(const void* bytes, size_t len, uint64_t job_key, int my_rank, int world_size, Hello* out);
uint64_t hello_proof(const SipKey& key, char direction, const Hello& h, const unsigned char* acceptor_nonce);
// The acceptor's half on a connected non-blocking fd: reads nothing past what each step needs,
// and gives up at the deadline. Returns why the peer is refused, or nullptr with *peer_rank and
// *stream set.
const char* accept_handshake(int fd, uint64_t job_key, const SipKey& key, int my_rank, int world_size,
                             int64_t deadline_ms, int* peer_rank, int* stream);

// A connected, non-blocking socket to one peer rank.
class Conn {
 public:
  Conn(int fd, int peer_rank, std::string peer_label);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int fd() const { return fd_; }
  int peer_rank() const { return peer_rank_; }
  const std::string& label() const { return label_; }

  // Bytes of the frame being sent that have not gone out yet; an abort pads them first so the
  // peer finds the abort header where it expects the next header.
  size_t unsent_in_frame = 0;

  // Best effort, bounded to a second: tell the peer why we stop, then close our side.
  void send_abort(uint32_t seq, const std::string& why);

 private:
  int fd_;
  int peer_rank_;
  std::string label_;
  bool aborted_ = false;
};

// Listens on one address (never on all interfaces) for connections from peer ranks.
class Listener {
 public:
  explicit Listener(const std::string& addr);
  ~Listener();
  int port() const { return port_; }
  // Accepts one connection that proves the job token; returns the fd, the peer rank and stream.
  // Strangers are dropped (one stderr line each) and waiting goes on.
  int accept_peer(uint64_t job_key, const SipKey& key, int my_rank, int world_size, int64_t deadline_ms,
                  int* peer_rank, int* stream);

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Connects to a peer's listener, says who we are, and proves the job token both ways.
int connect_peer(const std::string& addr, int port, uint64_t job_key, const SipKey& key, int my_rank,
                 int peer_rank, int stream, int64_t deadline_ms, const std::string& peer_label);

// Waits (poll, no spinning) until fd is readable/writable or the deadline passes.
bool wait_fd(int fd, short events, int timeout_ms);

}  // namespace unicc
