#pragma once
#include <cstddef>

#include "algorithms/partition.h"
#include "common/collective.h"
#include "transport/shm_group.h"

namespace unicc {

// Collectives among the ranks of one host, over their shared-memory group.
// Each publishes the caller's Desc in its first round and fails on every rank on a mismatch.

// Below small_bytes every rank reduces the whole buffer itself (one synchronisation);
// above it each rank owns a block, reduces it, and the others copy it (reads each byte once).
void local_allreduce(ShmGroup& g, const Desc& d, void* buf, size_t count, DType t, RedOp op,
                     size_t small_bytes);
// Afterwards local rank o holds block o of `blocks` (L parts) reduced over the host.
void local_reduce_scatter(ShmGroup& g, const Desc& d, void* buf, const Partition& blocks, DType t, RedOp op);
// Copies block o of `blocks` (L parts) from local rank o to everybody.
void local_allgather_blocks(ShmGroup& g, const Desc& d, void* buf, const Partition& blocks, size_t elem_size);
void local_broadcast(ShmGroup& g, const Desc& d, void* buf, size_t bytes, int root);
// out receives each local rank's `bytes` in local-rank order; in may alias its place in out.
void local_allgather(ShmGroup& g, const Desc& d, const void* in, void* out, size_t bytes);
void local_barrier(ShmGroup& g, const Desc& d);

}  // namespace unicc
