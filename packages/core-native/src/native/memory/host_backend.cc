#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "memory/backend.h"

namespace unicc {
namespace {

class HostBackend final : public MemoryBackend {
 public:
  const char* name() const override { return "host"; }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op) override {
    unicc::reduce(out, a, b, n, t, op);
  }
  void divide(void* buf, size_t n, DType t, int divisor) override { unicc::divide(buf, n, t, divisor); }
  void encode16(Wire w, const float* src, size_t n, void* msg) override { wire16_encode(w, src, n, msg); }
  void decode16(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) override {
    wire16_decode(w, msg, n, dst, accumulate, op);
  }
  void synchronize() override {}
  bool host_addressable() const override { return true; }
  void download(void* host_dst, const void* src, size_t bytes) override { copy(host_dst, src, bytes); }
  void upload(void* dst, const void* host_src, size_t bytes) override { copy(dst, host_src, bytes); }
  void* allocate(size_t bytes) override {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void release(void* p) override { std::free(p); }
  void* staging(size_t bytes) override {
    thread_local std::vector<char> room;  // one backend for all threads
    if (room.size() < bytes) room.resize(bytes);
    return room.data();
  }
};

}  // namespace

MemoryBackend& host_backend() {
  static HostBackend backend;
  return backend;
}

}  // namespace unicc
