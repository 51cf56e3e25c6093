#pragma once
#include <cstddef>

#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc {

// Where a collective's bytes live decides who copies, reduces and codes them: the CPU for host
// memory, the GPU for device memory. The executor runs every schedule through this interface, so
// that one algorithm serves either. Pointers are in the backend's memory (device pointers for
// CUDA) unless named host_*. Calls may run asynchronously (CUDA: in order on the backend's
// stream); synchronize() waits for everything issued so far, and download() returns only once its
// bytes have arrived. One thread at a time calls a backend (it keeps one staging, and a CUDA
// backend per-call scratch on its one stream): each communicator uses its own.
class MemoryBackend {
 public:
  virtual ~MemoryBackend() = default;
  virtual const char* name() const = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // out[i] = a[i] op b[i]; out may alias a or b. Avg sums (the communicator divides once).
  virtual void reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op) = 0;
  // buf[i] /= divisor (an average's last step), as reduce/reduce.h's divide.
  virtual void divide(void* buf, size_t n, DType t, int divisor) = 0;
  // The 16-bit message of reduce/wire16.h (a float32 power-of-two scale, then n codes), so that
  // a host decodes what a GPU encoded and the other way round.
  virtual void encode16(Wire w, const float* src, size_t n, void* msg) = 0;
  // dst = decoded values, or dst = dst op decoded values when accumulate.
  virtual void decode16(Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op) = 0;
  virtual void synchronize() = 0;

  // False for memory the CPU cannot touch (a GPU's): messages then travel through host memory,
  // by download and upload, and the executor never hands such a pointer to a socket.
  virtual bool host_addressable() const = 0;
  // host_dst = src, complete on return (everything issued before it included).
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // dst = host_src; host_src may be reused once it returns.
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  // Memory of the backend's, aligned for any element type (buffers, in tests and callers).
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  // Room in the backend's memory for messages on their way to or from the host: kept from one
  // call to the next and grown as needed, valid until the next call. Per collective, cudaMalloc
  // and cudaFree (which waits for the device) would sit on every collective's path.
  virtual void* staging(size_t bytes) = 0;
};

// The CPU's backend (vector code picked at run time on x86-64, NEON on aarch64, scalar
// elsewhere): reduce/ and wire16 behind the interface. Stateless and synchronous; one for all.
MemoryBackend& host_backend();

}  // namespace unicc
