// The buffer a collective reduces in place: memory of this process, or of a client process on
// this host (the bridge's Python client: Op::client_pid), which the core reads and writes by
// cross-memory attach (process_vm_readv/writev) piece by piece as an algorithm reaches it. So a
// client's tensor takes no copy into shared memory before the collective nor out of it after:
// the algorithm's own passes over the buffer are the only ones.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace unicc {

class UserBuffer {
 public:
  UserBuffer(void* at, int client_pid = 0) : at_(static_cast<char*>(at)), pid_(client_pid) {}  // NOLINT: a plain pointer is local memory
  bool local() const { return pid_ == 0; }
  char* local_at(size_t off) const { return at_ + off; }  // local() only
  // Copies between the buffer's bytes [off, off + n) and this process's memory; throw CommError
  // when the client's memory is not there (freed or unmapped while its request was in flight).
  void read(size_t off, void* to, size_t n) const;
  void write(size_t off, const void* from, size_t n) const;

 private:
  char* at_;
  int pid_;
};

// "" when the first and last of n bytes at `at` in process pid can be read and written by
// cross-memory attach (what a request is checked against before it starts), else why not.
std::string check_client_span(int pid, uintptr_t at, size_t n);
// "" when the n bytes at `at` in process pid read back equal to `expect` (memory both map), else
// why cross-memory attach to that process does not work here.
std::string probe_client_memory(int pid, uintptr_t at, const void* expect, size_t n);

}  // namespace unicc
