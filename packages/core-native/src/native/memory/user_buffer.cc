#include "memory/user_buffer.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace unicc {

namespace {

// Moves n bytes between local and remote, resuming after partial transfers; 0 or errno.
int transfer(int pid, void* local, uintptr_t remote, size_t n, bool to_client) {
  while (n) {
    iovec l{local, n}, r{reinterpret_cast<void*>(remote), n};
    const ssize_t got = to_client ? process_vm_writev(pid, &l, 1, &r, 1, 0) : process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return got < 0 ? errno : EFAULT;
    local = static_cast<char*>(local) + got;
    remote += static_cast<uintptr_t>(got);
    n -= static_cast<size_t>(got);
  }
  return 0;
}

std::string describe(const char* what, int pid, uintptr_t at, size_t n, int err) {
  std::ostringstream s;
  s << what << " " << n << " bytes at 0x" << std::hex << at << std::dec << " in client process " << pid
    << " failed: " << std::strerror(err);
  return s.str();
}

}  // namespace

void UserBuffer::read(size_t off, void* to, size_t n) const {
  if (local()) return void(std::memcpy(to, at_ + off, n));
  const uintptr_t at = reinterpret_cast<uintptr_t>(at_) + off;
  if (const int err = transfer(pid_, to, at, n, false))
    throw CommError(describe("reading", pid_, at, n, err) + " (was the tensor freed while its request was in flight?)");
}

void UserBuffer::write(size_t off, const void* from, size_t n) const {
  if (local()) return void(std::memcpy(at_ + off, from, n));
  const uintptr_t at = reinterpret_cast<uintptr_t>(at_) + off;
  if (const int err = transfer(pid_, const_cast<void*>(from), at, n, true))
    throw CommError(describe("writing", pid_, at, n, err) + " (was the tensor freed while its request was in flight?)");
}

std::string check_client_span(int pid, uintptr_t at, size_t n) {
  if (!n) return "";
  if (at + n < at) return "its span wraps around the address space";
  for (const uintptr_t byte : {at, at + n - 1}) {
    // Written back unchanged: the client does not touch a tensor while its request is pending.
    char c;
    int err = transfer(pid, &c, byte, 1, false);
    if (!err) err = transfer(pid, &c, byte, 1, true);
    if (err) return describe(err == EFAULT ? "reaching" : "attaching to", pid, at, n, err);
  }
  return "";
}

std::string probe_client_memory(int pid, uintptr_t at, const void* expect, size_t n) {
  std::vector<char> seen(n);
  if (const int err = transfer(pid, seen.data(), at, n, false)) return describe("reading", pid, at, n, err);
  if (std::memcmp(seen.data(), expect, n) != 0) return "process " + std::to_string(pid) + " holds other bytes at the address it named";
  return "";
}

}  // namespace unicc
