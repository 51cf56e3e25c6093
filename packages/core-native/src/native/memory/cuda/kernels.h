#pragma once
// Launchers of the CUDA memory backend's kernels (kernels.cu). Each enqueues its work on
// `stream` and returns at once, with the launch's error if any. Pointers are device-accessible;
// cuda_backend.cc checks the arguments, these only pick and size the kernels.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "reduce/reduce.h"
#include "reduce/wire16.h"

namespace unicc::cuda {

struct Launch {
  cudaStream_t stream;
  int max_blocks;  // a few waves of the device's multiprocessors: enough in flight, no tail of tiny blocks
};

cudaError_t reduce(const Launch& l, void* out, const void* a, const void* b, size_t n, DType t, RedOp op);
cudaError_t divide(const Launch& l, void* buf, size_t n, DType t, int divisor);
// scratch: one device word the encoder owns for the call (the largest magnitude's bits).
cudaError_t encode16(const Launch& l, Wire w, const float* src, size_t n, void* msg, uint32_t* scratch);
cudaError_t decode16(const Launch& l, Wire w, const void* msg, size_t n, float* dst, bool accumulate, RedOp op);

}  // namespace unicc::cuda
