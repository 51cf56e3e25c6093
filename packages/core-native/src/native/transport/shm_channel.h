#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "transport/channel.h"

namespace unicc {

// A peer on this host, reached through shared memory instead of TCP over loopback (the flat
// ring where ranks share hosts): one byte ring per direction in a segment the pair maps, so a
// frame is copied once each way and never through the kernel. Each side sleeps on a doorbell of
// its own (a FIFO, which the other rings only while it sleeps) and on the peer's pidfd, which
// wakes it when the peer dies (without pidfds it looks at the peer's process every 50 ms). One
// lane: shared memory has no per-flow limit to spread over.
class ShmChannel : public Channel {
 public:
  // The pair's half for rank `me` (peer_pid: the peer's process, from its rank record).
  ShmChannel(const std::string& name, int me, int peer, int peer_pid, std::string peer_label);
  bool lower() const { return lower_; }
  // The lower rank's first step: makes the segment and both doorbells, without waiting for
  // anyone, so that no rank's connect waits on a peer that waits in turn.
  void make();
  // Waits until the pair is joined (the upper rank first maps the segment), at most until
  // deadline_ms; then the names go, so a crash leaves nothing behind. Call every upper half's
  // first: those wait only on lower halves being made.
  void connect(int64_t deadline_ms);
  ~ShmChannel() override;
  ShmChannel(const ShmChannel&) = delete;
  ShmChannel& operator=(const ShmChannel&) = delete;

  const std::string& label() const override { return label_; }
  size_t lanes() const override { return 1; }
  size_t write(size_t lane, const iovec* iov, int iovcnt) override;
  size_t read(size_t lane, void* dst, size_t n) override;
  size_t peek(size_t lane, void* dst, size_t n) override;
  void set_unsent(size_t, size_t bytes) override { unsent_in_frame_ = bytes; }
  void arm(size_t lane, bool in, bool out, Waiter& w) override;

  // Tells the peer why this rank stops: it then reads the rest of the frame being written as
  // zeros, and an abort frame after it, as from a TCP connection (Conn::send_abort).
  void send_abort(uint32_t seq, const std::string& why);

  static constexpr size_t kRingBytes = size_t{4} << 20;  // per direction; a power of two
  struct Segment;  // the shared layout (shm_channel.cc)
  struct Ring;

 private:
  // Reads or peeks: ring bytes, then (once the peer aborted) the padding and its abort frame.
  size_t take(void* dst, size_t n, bool advance);
  size_t take_abort(char* dst, size_t n, bool advance);
  void ring_peer();
  bool peer_gone();
  static constexpr int64_t kLivenessCheckMs = 50;
  bool map(int fd);  // false: errno says why
  void open_my_bell();
  std::string bell(int side) const;  // side 0: the lower rank's
  void remove_names() const;
  [[noreturn]] void fail(const std::string& what) const;

  std::string name_, label_;
  int me_, peer_pid_;
  bool lower_;
  bool made_ = false;  // the names are this side's to remove
  Segment* seg_ = nullptr;
  Ring* out_ = nullptr;  // the ring this side writes
  Ring* in_ = nullptr;   // and the one it reads
  char* out_bytes_ = nullptr;
  char* in_bytes_ = nullptr;
  int my_bell_ = -1, peer_bell_ = -1, peer_pidfd_ = -1;
  size_t unsent_in_frame_ = 0;
  int64_t last_liveness_check_ms_ = 0;  // without a pidfd
  uint64_t read_at_ = 0;  // this side's read position (in_->head, and past it into an abort)
};

}  // namespace unicc
