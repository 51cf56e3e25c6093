#include "algorithms/local.h"

#include <cstring>
#include <vector>

#include "algorithms/partition.h"

namespace unicc {

namespace {

// The first round of a collective also checks that every rank asked for the same thing.
void finish_first_in(ShmGroup& g, uint64_t round, bool first) {
  if (!first) return;
  g.wait_all(round, ShmGroup::IN);
  g.check_descs(round);
}

enum class OwnerMode { ReduceScatterAllgather, ReduceScatter, Allgather };

// A piece of a client's buffer, reduced here: cross-memory attach cannot hand the reduction a
// pointer into another process, so that piece passes through this cache-hot scratch instead.
char* scratch(size_t bytes) {
  thread_local std::vector<char> area;
  if (area.size() < bytes) area.resize(bytes);
  return area.data();
}

// Reduces this rank's own piece (at `off` in buf) with the peers' (srcs[1..]) into `out`, divides
// by divisor (> 1: an average), and writes the result to the buffer unless out is the buffer.
void reduce_own_piece(const UserBuffer& buf, size_t off, const char** srcs, int nsrc, size_t n, size_t esize,
                      DType t, RedOp op, char* out, int divisor) {
  const bool into_buffer = buf.local() && out == buf.local_at(off);
  if (buf.local()) {
    srcs[0] = buf.local_at(off);
    if (divisor <= 1 && !into_buffer) return reduce_many(out, reinterpret_cast<const void* const*>(srcs), nsrc, n, t, op, buf.local_at(off));
  } else {
    srcs[0] = scratch(n * esize);
    buf.read(off, const_cast<char*>(srcs[0]), n * esize);
  }
  reduce_many(out, reinterpret_cast<const void* const*>(srcs), nsrc, n, t, op);
  if (divisor > 1) divide(out, n, t, divisor);
  if (!into_buffer) buf.write(off, out, n * esize);
}

// Owner o's block of the buffer moves through the group a piece per round, so the shared
// areas stay small and cache-hot however large the buffer is.
// divisor > 1 (an average) only with ReduceScatterAllgather, whose sums are final.
void owner_rounds(ShmGroup& g, const Desc& d, const UserBuffer& buf, const Partition& blocks, size_t esize, DType t,
                  RedOp op, OwnerMode mode, int divisor = 1) {
  const int L = g.local_size(), me = g.local_rank();
  const size_t piece_elems = g.piece_bytes() / esize;
  const size_t rounds = std::max<size_t>(1, ceil_div(blocks.longest(), piece_elems));
  auto sub = [&](int o, size_t k, size_t* n) {  // byte offset of owner o's piece k, its length in *n
    const size_t begin = std::min(blocks.len(o), k * piece_elems);
    *n = std::min(blocks.len(o), begin + piece_elems) - begin;
    return (blocks.start(o) + begin) * esize;
  };
  for (size_t k = 0; k < rounds; ++k) {
    const uint64_t R = g.begin_round();
    if (k == 0) g.publish_desc(R, d);
    size_t mine_n;
    const size_t mine = sub(me, k, &mine_n);
    if (mode == OwnerMode::Allgather) {
      buf.read(mine, g.out_area(me, R), mine_n * esize);
      g.post(R, ShmGroup::OUT);
      finish_first_in(g, R, k == 0);
    } else {
      for (int o = 0; o < L; ++o) {
        if (o == me) continue;
        size_t n;
        const size_t src = sub(o, k, &n);
        buf.read(src, g.in_area(me, R) + o * g.piece_bytes(), n * esize);
      }
      g.post(R, ShmGroup::IN);
      g.wait_all(R, ShmGroup::IN);
      if (k == 0) g.check_descs(R);
      // Mine first, then the peers in rank order. Fused mode reduces straight into the out
      // area that the peers copy from, and into my buffer on the way.
      const char* srcs[ShmGroup::kMaxLocal];
      int nsrc = 1;
      for (int p = 0; p < L; ++p)
        if (p != me) srcs[nsrc++] = g.in_area(p, R) + me * g.piece_bytes();
      const bool fused = mode == OwnerMode::ReduceScatterAllgather;
      char* out = fused ? g.out_area(me, R) : buf.local() ? buf.local_at(mine) : scratch(mine_n * esize);
      reduce_own_piece(buf, mine, srcs, nsrc, mine_n, esize, t, op, out, divisor);
      if (mode == OwnerMode::ReduceScatter) {
        g.post(R, ShmGroup::DONE);
        continue;
      }
      g.post(R, ShmGroup::OUT);
    }
    g.wait_all(R, ShmGroup::OUT);
    for (int o = 0; o < L; ++o) {
      if (o == me) continue;
      size_t n;
      const size_t dst = sub(o, k, &n);
      buf.write(dst, g.out_area(o, R), n * esize);
    }
    g.post(R, ShmGroup::DONE);
  }
}

}  // namespace

bool local_small(const ShmGroup& g, size_t bytes, size_t small_bytes) {
  return bytes <= small_bytes && bytes <= g.in_bytes();
}

uint64_t local_small_start(ShmGroup& g, const Desc& d, const UserBuffer& buf, size_t bytes) {
  const uint64_t R = g.begin_round();
  g.publish_desc(R, d);
  if (bytes) buf.read(0, g.in_area(g.local_rank(), R), bytes);
  g.post(R, ShmGroup::IN);
  return R;
}

void local_small_finish(ShmGroup& g, uint64_t round, const UserBuffer& buf, size_t count, DType t, RedOp op,
                        int divisor) {
  g.wait_all(round, ShmGroup::IN);
  g.check_descs(round);
  if (count) {
    const void* srcs[ShmGroup::kMaxLocal];
    for (int p = 0; p < g.local_size(); ++p) srcs[p] = g.in_area(p, round);
    const size_t bytes = count * dtype_size(t);
    char* out = buf.local() ? buf.local_at(0) : scratch(bytes);
    reduce_many(out, srcs, g.local_size(), count, t, op);
    if (divisor > 1) divide(out, count, t, divisor);
    if (!buf.local()) buf.write(0, out, bytes);
  }
  g.post(round, ShmGroup::DONE);
}

void local_allreduce(ShmGroup& g, const Desc& d, const UserBuffer& buf, size_t count, DType t, RedOp op,
                     size_t small_bytes, int divisor) {
  const size_t esize = dtype_size(t), bytes = count * esize;
  if (!local_small(g, bytes, small_bytes)) {
    const Partition blocks{count, static_cast<size_t>(g.local_size())};
    owner_rounds(g, d, buf, blocks, esize, t, op, OwnerMode::ReduceScatterAllgather, divisor);
    return;
  }
  local_small_finish(g, local_small_start(g, d, buf, bytes), buf, count, t, op, divisor);
}

void local_reduce_scatter(ShmGroup& g, const Desc& d, void* buf, const Partition& blocks, DType t, RedOp op) {
  owner_rounds(g, d, buf, blocks, dtype_size(t), t, op, OwnerMode::ReduceScatter);
}

void local_allgather_blocks(ShmGroup& g, const Desc& d, void* buf, const Partition& blocks, size_t elem_size) {
  owner_rounds(g, d, buf, blocks, elem_size, DType::F32, RedOp::Sum, OwnerMode::Allgather);
}

void local_broadcast(ShmGroup& g, const Desc& d, const UserBuffer& buf, size_t bytes, int root) {
  const size_t chunk = g.in_bytes();
  const size_t rounds = std::max<size_t>(1, ceil_div(bytes, chunk));
  for (size_t k = 0; k < rounds; ++k) {
    const uint64_t R = g.begin_round();
    if (k == 0) g.publish_desc(R, d);
    const size_t off = k * chunk, n = std::min(bytes - std::min(bytes, off), chunk);
    if (g.local_rank() == root) {
      buf.read(off, g.in_area(root, R), n);
      g.post(R, ShmGroup::OUT);
      finish_first_in(g, R, k == 0);
    } else {
      g.post(R, ShmGroup::IN);
      finish_first_in(g, R, k == 0);
      g.wait(root, R, ShmGroup::OUT);
      buf.write(off, g.in_area(root, R), n);
    }
    g.post(R, ShmGroup::DONE);
  }
}

void local_allgather(ShmGroup& g, const Desc& d, const void* in, void* out, size_t bytes) {
  const size_t chunk = g.in_bytes();
  const size_t rounds = std::max<size_t>(1, ceil_div(bytes, chunk));
  const char* src = static_cast<const char*>(in);
  char* dst = static_cast<char*>(out);
  const int me = g.local_rank();
  for (size_t k = 0; k < rounds; ++k) {
    const uint64_t R = g.begin_round();
    if (k == 0) g.publish_desc(R, d);
    const size_t off = k * chunk, n = std::min(bytes - std::min(bytes, off), chunk);
    std::memcpy(g.in_area(me, R), src + off, n);
    g.post(R, ShmGroup::IN);
    g.wait_all(R, ShmGroup::IN);
    if (k == 0) g.check_descs(R);
    for (int p = 0; p < g.local_size(); ++p)
      std::memcpy(dst + p * bytes + off, g.in_area(p, R), n);
    g.post(R, ShmGroup::DONE);
  }
}

void local_barrier(ShmGroup& g, const Desc& d) {
  local_small_finish(g, local_small_start(g, d, nullptr, 0), nullptr, 0, DType::F32, RedOp::Sum, 1);
}

}  // namespace unicc
