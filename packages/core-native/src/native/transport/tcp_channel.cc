#include "transport/tcp_channel.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace unicc {

namespace {

bool again() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

size_t received(ssize_t k) {
  if (k == 0) throw ChannelLost("connection closed");
  if (k < 0 && again()) return 0;
  if (k < 0) throw ChannelLost(std::strerror(errno));
  return static_cast<size_t>(k);
}

}  // namespace

size_t TcpChannel::write(size_t lane, const iovec* iov, int iovcnt) {
  msghdr mh{};
  mh.msg_iov = const_cast<iovec*>(iov);
  mh.msg_iovlen = static_cast<size_t>(iovcnt);
  const ssize_t k = sendmsg(streams_[lane]->fd(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (k < 0 && again()) return 0;
  if (k < 0) throw ChannelLost(std::strerror(errno));
  return static_cast<size_t>(k);
}

size_t TcpChannel::read(size_t lane, void* dst, size_t n) {
  return received(recv(streams_[lane]->fd(), dst, n, MSG_DONTWAIT));
}

size_t TcpChannel::peek(size_t lane, void* dst, size_t n) {
  return received(recv(streams_[lane]->fd(), dst, n, MSG_PEEK | MSG_DONTWAIT));
}

}  // namespace unicc
