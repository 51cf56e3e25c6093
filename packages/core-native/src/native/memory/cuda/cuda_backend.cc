#include "memory/cuda/cuda_backend.h"

#include <cstdint>

#include "common/error.h"
#include "memory/cuda/kernels.h"

namespace unicc {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CommError(std::string("CUDA ") + what + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

// Makes `device` current for the calling thread for the scope of one call, restoring the caller's.
class OnDevice {
 public:
  explicit OnDevice(int device) : device_(device) {
    check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (prev_ != device_) check(cudaSetDevice(device_), "cudaSetDevice");
  }
  ~OnDevice() {
    if (prev_ != device_) cudaSetDevice(prev_);
  }

 private:
  int device_;
  int prev_ = 0;
};

}  // namespace

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    cudaGetLastError();  // not sticky: leave no error behind for later calls
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount found no CUDA device";
  return n;
}

CudaEvent::CudaEvent() { check(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming), "cudaEventCreate"); }
CudaEvent::~CudaEvent() {
  if (e_) cudaEventDestroy(e_);
}
bool CudaEvent::done() const {
  const cudaError_t e = cudaEventQuery(e_);
  if (e == cudaErrorNotReady) return false;
  check(e, "cudaEventQuery");
  return true;
}
void CudaEvent::wait() const { check(cudaEventSynchronize(e_), "cudaEventSynchronize"); }

CudaBackend::CudaBackend(int device, cudaStream_t stream)
    : device_(device), stream_(stream), own_stream_(stream == nullptr) {
  std::string why;
  const int count = cuda_device_count(&why);
  if (device < 0 || device >= count)
    throw CommError("CUDA device " + std::to_string(device) + " does not exist (" + (count ? std::to_string(count) + " found" : why) +
                    "): pick a device below the count, or use host memory");
  const OnDevice on(device_);
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_), "cudaDeviceGetAttribute");
  max_blocks_ = sms * 8;  // 8 blocks of 256 threads fill a multiprocessor's 2048 threads
  if (own_stream_) check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaMalloc(reinterpret_cast<void**>(&scratch_), sizeof *scratch_), "cudaMalloc");
  check(cudaEventCreateWithFlags(&marker_, cudaEventDisableTiming), "cudaEventCreate");
}

CudaBackend::~CudaBackend() {
  const OnDevice on(device_);
  cudaStreamSynchronize(stream_);  // the scratch word may still be in use
  cudaEventDestroy(marker_);
  cudaFree(scratch_);
  cudaFree(staging_);
  if (own_stream_) cudaStreamDestroy(stream_);
}

void CudaBackend::after(cudaStream_t other) {
  const OnDevice on(device_);
  check(cudaEventRecord(marker_, other), "cudaEventRecord");
  check(cudaStreamWaitEvent(stream_, marker_, 0), "cudaStreamWaitEvent");
}

void CudaBackend::after(const CudaEvent& e) {
  const OnDevice on(device_);
  check(cudaStreamWaitEvent(stream_, e.get(), 0), "cudaStreamWaitEvent");
}

CudaEvent CudaBackend::record() {
  const OnDevice on(device_);
  CudaEvent e;
  check(cudaEventRecord(e.get(), stream_), "cudaEventRecord");
  return e;
}

// A host pointer handed to a kernel would fault and poison the whole CUDA context: refuse it
// here, naming the argument.
void CudaBackend::check_device_memory(const void* p, const char* what) const {
  cudaPointerAttributes a{};
  check(cudaPointerGetAttributes(&a, p), "cudaPointerGetAttributes");
  if (a.type == cudaMemoryTypeUnregistered || a.devicePointer == nullptr)
    throw CommError(std::string("the CUDA backend was given host memory as ") + what +
                    ": pass device memory (cudaMalloc), or pinned host memory registered with CUDA, or use the host backend");
  if (reinterpret_cast<uintptr_t>(p) % 4)
    throw CommError(std::string("the CUDA backend was given ") + what + " not aligned to 4 bytes: float32 data and 16-bit messages must be");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  const OnDevice on(device_);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "cudaMemcpyAsync");
}

void CudaBackend::reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op) {
  if (!n) return;
  const OnDevice on(device_);
  check_device_memory(out, "the output");
  check_device_memory(a, "the first input");
  check_device_memory(b, "the second input");
  check(cuda::reduce({stream_, max_blocks_}, out, a, b, n, t, op), "reduce kernel launch");
}

void CudaBackend::divide(void* buf, size_t n, DType t, int divisor) {
  if (!n) return;
  const OnDevice on(device_);
  check_device_memory(buf, "the values to divide");
  check(cuda::divide({stream_, max_blocks_}, buf, n, t, divisor), "divide kernel launch");
}

void CudaBackend::encode16(Wire w, const float* src, size_t n, void* msg) {
  if (w == Wire::Exact) throw CommError("encode16 needs a 16-bit wire (fp16 or bf16)");
  const OnDevice on(device_);
  if (n) check_device_memory(src, "the values to encode");
  check_device_memory(msg, "the 16-bit message");
  check(cuda::encode16({stream_, max_blocks_}, w, src, n, msg, scratch_), "encode kernel launch");
}

void CudaBackend::decode16(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) {
  if (w == Wire::Exact) throw CommError("decode16 needs a 16-bit wire (fp16 or bf16)");
  if (!n) return;
  const OnDevice on(device_);
  check_device_memory(msg, "the 16-bit message");
  check_device_memory(dst, "the decoded values");
  check(cuda::decode16({stream_, max_blocks_}, w, msg, n, dst, accumulate, op), "decode kernel launch");
}

void CudaBackend::synchronize() {
  const OnDevice on(device_);
  check(cudaStreamSynchronize(stream_), "the backend's stream (a kernel failed)");
}

// Both wait for the stream: a download's bytes are read at once by a socket, and an upload's
// host bytes may be a socket's buffer that is refilled as soon as this returns.
void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  copy_across(host_dst, src, bytes, cudaMemcpyDeviceToHost, src, "the bytes to download");
}

void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  copy_across(dst, host_src, bytes, cudaMemcpyHostToDevice, dst, "the upload's destination");
}

void CudaBackend::copy_across(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const void* device_side,
                              const char* what) {
  if (!bytes) return;
  const OnDevice on(device_);
  check_device_memory(device_side, what);
  check(cudaMemcpyAsync(dst, src, bytes, kind, stream_), kind == cudaMemcpyDeviceToHost ? "cudaMemcpyAsync to the host" : "cudaMemcpyAsync to the device");
  synchronize();
}

void* CudaBackend::allocate(size_t bytes) {
  const OnDevice on(device_);
  void* p = nullptr;
  check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  return p;
}

void CudaBackend::release(void* p) {
  const OnDevice on(device_);
  cudaStreamSynchronize(stream_);  // work issued before may still use it
  cudaFree(p);
}

void* CudaBackend::staging(size_t bytes) {
  if (bytes > staging_bytes_) {
    if (staging_) release(staging_);
    staging_ = nullptr;  // a failed allocation leaves none, not a released one
    staging_bytes_ = 0;
    staging_ = allocate(bytes);
    staging_bytes_ = bytes;
  }
  return staging_;
}

}  // namespace unicc
