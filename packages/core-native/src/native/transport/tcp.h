#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

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
  // Accepts one connection and reads its hello; returns the fd, the claimed peer rank and stream.
  int accept_peer(uint64_t job_key, int my_rank, int world_size, int64_t deadline_ms, int* peer_rank, int* stream);

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Connects to a peer's listener and says who we are.
int connect_peer(const std::string& addr, int port, uint64_t job_key, int my_rank, int peer_rank, int stream,
                 int64_t deadline_ms, const std::string& peer_label);

// Waits (poll, no spinning) until fd is readable/writable or the deadline passes.
bool wait_fd(int fd, short events, int timeout_ms);

}  // namespace unicc
