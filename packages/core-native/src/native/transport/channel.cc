#include "transport/channel.h"

#include <cerrno>
#include <cstring>

namespace unicc {

void Waiter::wait(int timeout_ms) {
  const int rc = poll(fds_.data(), fds_.size(), timeout_ms);
  if (rc < 0 && errno != EINTR) throw std::runtime_error("poll failed: " + std::string(std::strerror(errno)));
}

}  // namespace unicc
