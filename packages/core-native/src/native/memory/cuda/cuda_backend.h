#pragma once
// The CUDA memory backend: copy, reduce and 16-bit coding on device memory, enqueued on one
// CUDA stream, with the stream semantics a framework needs (work ordered after the framework's
// stream; completion as an event). Built only where nvcc is found (UNICC_HAVE_CUDA).
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "memory/backend.h"

namespace unicc {

// CUDA devices this process can use; 0 with the reason in *why when there are none (no driver,
// no GPU), so that callers and tests can say why they do not run.
int cuda_device_count(std::string* why);

// A completion marker of work issued to a stream (cudaEvent_t, owned).
class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(CudaEvent&& o) noexcept : e_(o.e_) { o.e_ = nullptr; }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return e_; }
  bool done() const;  // true once the work before it has finished
  void wait() const;  // blocks the calling thread until then

 private:
  cudaEvent_t e_;
};

class CudaBackend final : public MemoryBackend {
 public:
  // Work goes to `stream` on `device` (nullptr: a non-blocking stream of the backend's own).
  explicit CudaBackend(int device, cudaStream_t stream = nullptr);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  // Orders the work issued from now on after everything already issued to `other` (a
  // framework's current stream), without blocking the host.
  void after(cudaStream_t other);
  void after(const CudaEvent& e);
  // An event that completes once everything issued so far has run.
  CudaEvent record();

  void copy(void* dst, const void* src, size_t bytes) override;
  void reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op) override;
  void divide(void* buf, size_t n, DType t, int divisor) override;
  void encode16(Wire w, const float* src, size_t n, void* msg) override;
  void decode16(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) override;
  void synchronize() override;
  bool host_addressable() const override { return false; }
  void download(void* host_dst, const void* src, size_t bytes) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void* allocate(size_t bytes) override;
  void release(void* p) override;
  void* staging(size_t bytes) override;

 private:
  void check_device_memory(const void* p, const char* what) const;
  // A copy between the host and device memory at `device_side`, complete on return.
  void copy_across(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const void* device_side,
                   const char* what);
  int device_;
  cudaStream_t stream_;
  bool own_stream_;
  int max_blocks_;
  uint32_t* scratch_;  // the encoder's largest-magnitude word
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  cudaEvent_t marker_;  // for after(stream)
};

}  // namespace unicc
