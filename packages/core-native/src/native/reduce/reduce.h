#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace unicc {

enum class DType : uint8_t { F32 = 0, F64 = 1, I32 = 2, I64 = 3 };
// Avg never reaches a kernel: algorithms sum and the communicator divides once at the end.
enum class RedOp : uint8_t { Sum = 0, Avg = 1, Min = 2, Max = 3, Prod = 4 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* redop_name(RedOp op);

// out[i] = a[i] op b[i] for i < n; out may alias a or b. Integer sum and product wrap.
void reduce(void* out, const void* a, const void* b, size_t n, DType t, RedOp op);

// out[i] = srcs[0][i] op srcs[1][i] op ... op srcs[nsrc-1][i], in that order, block by block so
// that out stays in L1 between sources: each source is read once and out written once. If
// also_to is given, each finished block is copied there too while it is still in cache.
// out may alias srcs[0].
void reduce_many(void* out, const void* const* srcs, int nsrc, size_t n, DType t, RedOp op,
                 void* also_to = nullptr);

// buf[i] /= divisor (integers truncate toward zero), used to turn a sum into an average.
void divide(void* buf, size_t n, DType t, int divisor);

}  // namespace unicc
