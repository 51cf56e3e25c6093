#pragma once
#include <poll.h>
#include <sys/uio.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace unicc {

// What a channel throws when its peer is gone; the executor adds what was going on.
struct ChannelLost : std::runtime_error {
  explicit ChannelLost(const std::string& why) : std::runtime_error(why) {}
};

// The descriptors an executor sleeps on until some lane of some channel can move.
class Waiter {
 public:
  void clear() { fds_.clear(); }
  void add(int fd, bool in, bool out) {
    if (in || out) fds_.push_back({fd, static_cast<short>((in ? POLLIN : 0) | (out ? POLLOUT : 0)), 0});
  }
  // Sleeps until one is ready or timeout_ms passes.
  void wait(int timeout_ms);

 private:
  std::vector<pollfd> fds_;
};

// The connection to one peer: one or more lanes, each an ordered byte stream that carries whole
// frames (TCP: one socket per stream). All calls are non-blocking; the executor decides which
// lane carries which frame and when to wait.
class Channel {
 public:
  virtual ~Channel() = default;
  virtual const std::string& label() const = 0;  // the peer, for error messages
  virtual size_t lanes() const = 0;
  // Bytes taken (0: the lane is full now). Throws ChannelLost.
  virtual size_t write(size_t lane, const iovec* iov, int iovcnt) = 0;
  // Bytes given (0: nothing there now); peek leaves them in the lane. Throws ChannelLost.
  virtual size_t read(size_t lane, void* dst, size_t n) = 0;
  virtual size_t peek(size_t lane, void* dst, size_t n) = 0;
  // Bytes of the frame being written on the lane that have not gone out yet, so that an abort
  // can complete the frame before it announces itself.
  virtual void set_unsent(size_t lane, size_t bytes) = 0;
  // Asks w to wake when the lane can be read (in) or written (out).
  virtual void arm(size_t lane, bool in, bool out, Waiter& w) = 0;
};

}  // namespace unicc
