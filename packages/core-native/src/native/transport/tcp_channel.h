#pragma once
#include <vector>

#include "transport/channel.h"
#include "transport/tcp.h"

namespace unicc {

// A peer over one TCP connection per stream (the communicator owns the connections).
class TcpChannel : public Channel {
 public:
  explicit TcpChannel(std::vector<Conn*> streams) : streams_(std::move(streams)) {}
  const std::string& label() const override { return streams_.at(0)->label(); }
  size_t lanes() const override { return streams_.size(); }
  size_t write(size_t lane, const iovec* iov, int iovcnt) override;
  size_t read(size_t lane, void* dst, size_t n) override;
  size_t peek(size_t lane, void* dst, size_t n) override;
  void set_unsent(size_t lane, size_t bytes) override { streams_[lane]->unsent_in_frame = bytes; }
  void arm(size_t lane, bool in, bool out, Waiter& w) override { w.add(streams_[lane]->fd(), in, out); }

 private:
  std::vector<Conn*> streams_;
};

}  // namespace unicc
