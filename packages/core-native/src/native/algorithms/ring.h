#pragma once
#include <cstddef>
#include <functional>
#include <vector>

#include "common/collective.h"
#include "reduce/wire16.h"
#include "transport/tcp.h"

namespace unicc {

// Ranks joined in a ring of TCP connections, one or more streams to each neighbour (two ranks:
// left and right are the same sockets).
struct Ring {
  std::vector<Conn*> left;
  std::vector<Conn*> right;
  int index = 0;  // my position in the ring
  int size = 1;
  size_t chunk_bytes = 1 << 20;
  int timeout_ms = 30000;
  // Called while waiting, so a failure seen elsewhere (shared memory, another ring) stops us.
  std::function<void()> check_abort;
  std::string self_label;
};

// Pipelined ring allreduce: reduce-scatter then allgather, chunk by chunk, in place. A 16-bit
// wire applies to float32 only; other types always travel exactly.
void ring_allreduce(Ring& r, const Desc& d, void* buf, size_t count, DType t, RedOp op, Wire wire = Wire::Exact);
// Pipelined chain from the ring position root_index.
void ring_broadcast(Ring& r, const Desc& d, void* buf, size_t bytes, int root_index);
// out holds size blocks of `bytes` in ring order; block `index` must already hold my data.
void ring_allgather(Ring& r, const Desc& d, void* out, size_t bytes);

}  // namespace unicc
