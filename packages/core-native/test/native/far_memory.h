#pragma once
// Memory the executor must treat as a device's, on a machine without one: one memfd mapped
// twice, with no access where the executor sees it and read-write where this backend works. A
// direct touch of a buffer (a memcpy, a socket reading into it or writing from it) then faults or
// fails instead of passing quietly, as it would on a GPU's memory. The arithmetic is the host
// backend's, so results match host memory bit for bit.
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "memory/backend.h"

namespace unicc::test {

class FarMemory final : public MemoryBackend {
 public:
  explicit FarMemory(size_t capacity) : capacity_(capacity) {
    fd_ = memfd_create("unicc-far-memory", MFD_CLOEXEC);
    if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(capacity)) != 0) throw std::runtime_error("memfd for far memory");
    far_ = map(PROT_NONE);
    near_ = map(PROT_READ | PROT_WRITE);
  }
  ~FarMemory() override {
    munmap(far_, capacity_);
    munmap(near_, capacity_);
    close(fd_);
  }

  std::atomic<size_t> downloaded{0}, uploaded{0};  // bytes that crossed to and from the host
  std::atomic<size_t> allocations{0};

  const char* name() const override { return "far"; }
  bool host_addressable() const override { return false; }
  void copy(void* dst, const void* src, size_t bytes) override { host().copy(near(dst, bytes), near(src, bytes), bytes); }
  void reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op) override {
    const size_t bytes = n * dtype_size(t);
    host().reduce(near(out, bytes), near(a, bytes), near(b, bytes), n, t, op);
  }
  void divide(void* buf, size_t n, DType t, int divisor) override {
    host().divide(near(buf, n * dtype_size(t)), n, t, divisor);
  }
  void encode16(Wire w, const float* src, size_t n, void* msg) override {
    host().encode16(w, static_cast<const float*>(near(src, n * 4)), n, near(msg, wire16_bytes(n)));
  }
  void decode16(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) override {
    host().decode16(w, near(msg, wire16_bytes(n)), n, static_cast<float*>(near(dst, n * 4)), accumulate, op);
  }
  void synchronize() override {}
  void download(void* host_dst, const void* src, size_t bytes) override {
    host().copy(host_dst, near(src, bytes), bytes);
    downloaded += bytes;
  }
  void upload(void* dst, const void* host_src, size_t bytes) override {
    host().copy(near(dst, bytes), host_src, bytes);
    uploaded += bytes;
  }
  // A bump allocator: tests allocate little, and the mapping is only reserved until touched.
  void* allocate(size_t bytes) override {
    const size_t at = used_.fetch_add((bytes + 255) & ~size_t{255});
    if (at + bytes > capacity_) throw std::runtime_error("far memory full");
    ++allocations;
    return far_ + at;
  }
  void release(void*) override {}
  void* staging(size_t bytes) override {
    if (bytes > staging_bytes_) {
      staging_ = allocate(bytes);
      staging_bytes_ = bytes;
    }
    return staging_;
  }

 private:
  static MemoryBackend& host() { return host_backend(); }
  char* map(int prot) {
    void* p = mmap(nullptr, capacity_, prot, MAP_SHARED, fd_, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap of far memory");
    return static_cast<char*>(p);
  }
  // The backend's own view of [p, p + bytes); anything else is a pointer the executor made up.
  void* near(const void* p, size_t bytes) const {
    const uintptr_t at = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(far_);
    if (reinterpret_cast<const char*>(p) < far_ || at + bytes > capacity_)
      throw std::logic_error("far memory was handed " + std::to_string(bytes) + " bytes at " +
                             std::to_string(static_cast<long long>(at)) + " of its " + std::to_string(capacity_) +
                             ": a pointer outside it (host memory?)");
    return near_ + at;
  }

  size_t capacity_;
  int fd_ = -1;
  char* far_ = nullptr;
  char* near_ = nullptr;
  std::atomic<size_t> used_{0};
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
};

}  // namespace unicc::test
