#pragma once
#include <cstddef>

#include "algorithms/partition.h"
#include "algorithms/schedule.h"

namespace unicc {

// The collectives as schedules for rank `me` of `n`, over a buffer of `count` elements of `es`
// bytes, moved in chunks of at most `chunk_elems` elements (so that a stream keeps several in
// flight and a large buffer pipelines). Every chunk travels, even an empty one, so that a
// zero-length collective still synchronises.

// Chunks of at most chunk_bytes, but small enough that a block of block_elems keeps each of
// `streams` lanes busy (and no smaller than 64 KiB where the block allows).
size_t pipeline_chunk_elems(size_t chunk_bytes, size_t streams, size_t block_elems, size_t es);
// The pieces a batch of batch_bytes is cut into where a host's ranks reduce inside it while pieces
// cross hosts: `configured`, but a batch of only a piece or two would barely pipeline (nothing
// crosses before its first piece is reduced, its last is shared after all has crossed), so it
// gets 4 pieces at least, of 1 MiB at least.
size_t pipeline_piece_bytes(size_t batch_bytes, size_t configured);

// Pipelined ring (right = me + 1): afterwards rank me holds block me of Partition{count, n},
// reduced over every rank.
Schedule ring_reduce_scatter_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems);
// Rank i holds block i of Partition{count, n}; afterwards every rank holds every block.
Schedule ring_allgather_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems);
// Reduce-scatter then allgather, each chunk moving on as soon as it is in.
Schedule ring_allreduce_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems);
// Pipelined chain from `root` around the ring; bytes, no reduction.
Schedule ring_broadcast_schedule(int n, int me, size_t bytes, int root, size_t chunk_bytes);

// Latency-optimal for small buffers: log2(n) pairwise exchanges of the whole buffer (rank
// me ^ 2^k in step k). With n not a power of two, the first 2r ranks (n = 2^m + r) fold in
// pairs before and get the result back after. On a 16-bit wire the ranks end bit-identical only
// where n is a power of two (the folded ranks get their result rounded once more).
Schedule recursive_doubling_allreduce_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems);

// Hosts x local ranks (rank = host * local + local rank): reduce-scatter inside the host,
// block l allreduced across hosts among the ranks of local rank l, allgather inside the host,
// composed so that each chunk crosses the seams as soon as it is ready. `host_blocks` splits
// the buffer among the local ranks.
Schedule hierarchical_allreduce_schedule(int hosts, int local, int rank, const Partition& host_blocks, size_t es,
                                         size_t chunk_elems);

}  // namespace unicc
