/**
 * Rank `rank`'s contiguous share [start, end) of `count` samples: the first `count % size` ranks
 * take one more, so shards differ by at most one sample and rank order is dataset order.
 */
export function shardRange(count: number, rank: number, size: number): { start: number; end: number } {
  const base = Math.floor(count / size), extra = count % size;
  const start = rank * base + Math.min(rank, extra);
  return { start, end: start + base + (rank < extra ? 1 : 0) };
}

/** The largest shard: what every rank pads its part of an allgather to. */
export const maxShard = (count: number, size: number) => Math.ceil(count / size);
