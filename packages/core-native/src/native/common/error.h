#pragma once
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace unicc {

// Raised for anything that breaks a collective. The message is written for the user: what
// happened, on which rank, and what to do. Once raised, the communicator stays failed.
class CommError : public std::runtime_error {
 public:
  explicit CommError(const std::string& what) : std::runtime_error(what) {}
};

// The last system call's failure, in words, for those messages.
inline std::string errno_text() { return std::strerror(errno); }

}  // namespace unicc
