#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "algorithms/partition.h"
#include "algorithms/schedule.h"

namespace unicc {

// Chunk c of block b, both in elements; every block has the same number of chunks (the longest
// block's), so that ring neighbours agree on them whatever the split.
struct Chunking {
  Partition blocks;
  size_t chunk_elems;
  size_t chunks;
  Chunking(const Partition& b, size_t chunk_elems);
  size_t start(size_t b, size_t c) const;
  size_t len(size_t b, size_t c) const;
};

// The two halves of a ring allreduce, appended to s (whose rank and size name the ring), for
// builders that compose them. `first_after`: per chunk, a step the first send of that chunk
// waits for (or empty). Each returns, per chunk, the step that completes it on this rank.
// Reduce-scatter: in step k rank me sends block me + shift - k to the right and reduces block
// me + shift - k - 1 from the left, so it ends owning block me + shift + 1.
std::vector<int32_t> ring_reduce_scatter_phase(Schedule& s, const Chunking& ch, size_t es, long shift,
                                               const std::vector<int32_t>& first_after);
// Allgather: rank me starts owning block me + owned_shift. round_first: round the owned block
// through a 16-bit wire as it first leaves (the owner keeps what the others receive).
std::vector<int32_t> ring_allgather_phase(Schedule& s, const Chunking& ch, size_t es, long owned_shift,
                                          const std::vector<int32_t>& first_after, bool round_first);

}  // namespace unicc
