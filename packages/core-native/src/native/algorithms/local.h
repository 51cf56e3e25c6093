#pragma once
#include <cstddef>

#include "algorithms/partition.h"
#include "common/collective.h"
#include "memory/user_buffer.h"
#include "transport/shm_group.h"

namespace unicc {

// Collectives among the ranks of one host, over their shared-memory group.
// Each publishes the caller's Desc in its first round and fails on every rank on a mismatch.
// Buffers given as UserBuffer may be a client process's memory; the others are this process's.

// Below small_bytes every rank reduces the whole buffer itself (one synchronisation);
// above it each rank owns a block, reduces it, and the others copy it (reads each byte once).
// divisor > 1 divides the sums (an average) while each piece is still in cache.
void local_allreduce(ShmGroup& g, const Desc& d, const UserBuffer& buf, size_t count, DType t, RedOp op,
                     size_t small_bytes, int divisor);
// The one-round collectives (an allreduce that fits local_small, a barrier: count 0) in two
// halves, for a caller that must not block: start copies this rank's bytes into its slot and
// posts them (call it when g.round_free()); finish waits for every peer's, reduces all slots in
// rank order into buf (so every rank gets bit-identical results) and releases the round; it does
// not wait once g.arrived(round, IN) said so.
bool local_small(const ShmGroup& g, size_t bytes, size_t small_bytes);
uint64_t local_small_start(ShmGroup& g, const Desc& d, const UserBuffer& buf, size_t bytes);
void local_small_finish(ShmGroup& g, uint64_t round, const UserBuffer& buf, size_t count, DType t, RedOp op,
                        int divisor);
// Afterwards local rank o holds block o of `blocks` (L parts) reduced over the host.
void local_reduce_scatter(ShmGroup& g, const Desc& d, void* buf, const Partition& blocks, DType t, RedOp op);
// Copies block o of `blocks` (L parts) from local rank o to everybody.
void local_allgather_blocks(ShmGroup& g, const Desc& d, void* buf, const Partition& blocks, size_t elem_size);
void local_broadcast(ShmGroup& g, const Desc& d, const UserBuffer& buf, size_t bytes, int root);
// out receives each local rank's `bytes` in local-rank order; in may alias its place in out.
void local_allgather(ShmGroup& g, const Desc& d, const void* in, void* out, size_t bytes);
void local_barrier(ShmGroup& g, const Desc& d);

}  // namespace unicc
