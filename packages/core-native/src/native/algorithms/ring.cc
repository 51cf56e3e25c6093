#include "algorithms/ring.h"

#include <algorithm>

#include "algorithms/schedules.h"

namespace unicc {

namespace {

size_t mod(long a, long n) { return static_cast<size_t>(((a % n) + n) % n); }

}  // namespace

size_t pipeline_chunk_elems(size_t chunk_bytes, size_t streams, size_t block_elems, size_t es) {
  constexpr size_t kMinChunkBytes = 64 << 10;
  const size_t per_stream = ceil_div(block_elems, streams ? streams : 1);
  return std::max<size_t>(1, std::min(chunk_bytes, std::max(kMinChunkBytes, per_stream * es)) / es);
}

size_t pipeline_piece_bytes(size_t batch_bytes, size_t configured) {
  constexpr size_t kMinPieces = 4, kMinPieceBytes = 1 << 20;
  return std::min(configured, std::max(kMinPieceBytes, batch_bytes / kMinPieces));
}

Chunking::Chunking(const Partition& b, size_t chunk_elems_)
    : blocks(b), chunk_elems(std::max<size_t>(1, chunk_elems_)),
      chunks(std::max<size_t>(1, ceil_div(b.longest(), chunk_elems))) {}

size_t Chunking::start(size_t b, size_t c) const { return blocks.start(b) + std::min(blocks.len(b), c * chunk_elems); }

size_t Chunking::len(size_t b, size_t c) const {
  const size_t s = std::min(blocks.len(b), c * chunk_elems);
  return std::min(blocks.len(b) - s, chunk_elems);
}

std::vector<int32_t> ring_reduce_scatter_phase(Schedule& s, const Chunking& ch, size_t es, long shift,
                                               const std::vector<int32_t>& first_after) {
  const long n = s.size, me = s.rank;
  const int left = static_cast<int>(mod(me - 1, n)), right = static_cast<int>(mod(me + 1, n));
  std::vector<int32_t> prev = first_after;  // per chunk: what the next send of that chunk waits for
  for (long step = 0; step < n - 1; ++step) {
    const size_t send_block = mod(me + shift - step, n), recv_block = mod(me + shift - step - 1, n);
    std::vector<int32_t> got(ch.chunks);
    for (size_t c = 0; c < ch.chunks; ++c) {
      Step send{Step::kSend, false, false, right, ch.start(send_block, c) * es, ch.len(send_block, c) * es, {}};
      if (!prev.empty() && prev[c] >= 0) send.after.push_back(prev[c]);
      s.add(std::move(send));
      got[c] = s.add({Step::kRecvReduce, false, false, left, ch.start(recv_block, c) * es, ch.len(recv_block, c) * es, {}});
    }
    prev = std::move(got);
  }
  return prev;
}

std::vector<int32_t> ring_allgather_phase(Schedule& s, const Chunking& ch, size_t es, long owned_shift,
                                          const std::vector<int32_t>& first_after, bool round_first) {
  const long n = s.size, me = s.rank;
  const int left = static_cast<int>(mod(me - 1, n)), right = static_cast<int>(mod(me + 1, n));
  std::vector<int32_t> prev = first_after;
  for (long step = 0; step < n - 1; ++step) {
    const size_t send_block = mod(me + owned_shift - step, n), recv_block = mod(me + owned_shift - step - 1, n);
    std::vector<int32_t> got(ch.chunks);
    for (size_t c = 0; c < ch.chunks; ++c) {
      Step send{Step::kSend, false, round_first && step == 0, right, ch.start(send_block, c) * es,
                ch.len(send_block, c) * es, {}};
      if (!prev.empty() && prev[c] >= 0) send.after.push_back(prev[c]);
      s.add(std::move(send));
      got[c] = s.add({Step::kRecv, false, false, left, ch.start(recv_block, c) * es, ch.len(recv_block, c) * es, {}});
    }
    prev = std::move(got);
  }
  return prev;
}

namespace {

Schedule empty(int n, int me) {
  Schedule s;
  s.size = n;
  s.rank = me;
  return s;
}

}  // namespace

Schedule ring_reduce_scatter_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems) {
  Schedule s = empty(n, me);
  // Shift -1: the last block a rank reduces is its own.
  ring_reduce_scatter_phase(s, Chunking(Partition{count, static_cast<size_t>(n)}, chunk_elems), es, -1, {});
  return s;
}

Schedule ring_allgather_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems) {
  Schedule s = empty(n, me);
  ring_allgather_phase(s, Chunking(Partition{count, static_cast<size_t>(n)}, chunk_elems), es, 0, {}, false);
  return s;
}

Schedule ring_allreduce_schedule(int n, int me, size_t count, size_t es, size_t chunk_elems) {
  Schedule s = empty(n, me);
  const Chunking ch(Partition{count, static_cast<size_t>(n)}, chunk_elems);
  // Shift 0: rank me ends the reduce-scatter owning block me + 1, and passes it on at once.
  const std::vector<int32_t> reduced = ring_reduce_scatter_phase(s, ch, es, 0, {});
  ring_allgather_phase(s, ch, es, 1, reduced, true);
  return s;
}

Schedule ring_broadcast_schedule(int n, int me, size_t bytes, int root, size_t chunk_bytes) {
  Schedule s = empty(n, me);
  if (n < 2) return s;
  const Chunking ch(Partition{bytes, 1}, chunk_bytes);
  const bool is_root = me == root;
  const bool forwards = (me + 1) % n != root;
  const int left = (me + n - 1) % n, right = (me + 1) % n;
  for (size_t c = 0; c < ch.chunks; ++c) {
    int32_t got = -1;
    if (!is_root) got = s.add({Step::kRecv, false, false, left, ch.start(0, c), ch.len(0, c), {}});
    if (is_root || forwards) {
      Step send{Step::kSend, false, false, right, ch.start(0, c), ch.len(0, c), {}};
      if (got >= 0) send.after.push_back(got);
      s.add(std::move(send));
    }
  }
  return s;
}

}  // namespace unicc
