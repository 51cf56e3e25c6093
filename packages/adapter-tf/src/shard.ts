import type { Dataset } from "@tensorflow/tfjs-data";
import { generator } from "@tensorflow/tfjs-data";
import { dispose, gather, tensor1d, Tensor, type TensorContainer } from "@tensorflow/tfjs-core";

/** Where this process sits: a unicc `World` or anything with its rank and size. */
export interface Placement {
  rank: number;
  size: number;
}

export interface ShardOptions {
  /**
   * Drop the last `length % size` elements so that every rank gets the same number (default
   * true): ranks that run different numbers of steps would wait for each other forever.
   */
  dropRemainder?: boolean;
}

function shardLength(n: number, { rank, size }: Placement, dropRemainder: boolean): number {
  return dropRemainder ? Math.floor(n / size) : Math.max(0, Math.ceil((n - rank) / size));
}

/**
 * This rank's share of `data`: elements rank, rank + size, rank + 2·size, ... Taking every
 * size-th element means that when every rank walks its shard in batches of b, step k covers on
 * all ranks together exactly elements [k·b·size, (k+1)·b·size) of `data`: the global batch a
 * single process with batch b·size would take.
 *
 * - an array (or typed array): a new array;
 * - a tf.Tensor: a new tensor of the rows along the first axis (the caller disposes both);
 * - a tf.data.Dataset: a dataset that reads `data` and keeps this rank's elements (disposing
 *   the others); shard before `shuffle`/`batch`, or shuffle with the same seed on every rank.
 */
export function shard<T>(data: T[], where: Placement, opts?: ShardOptions): T[];
export function shard<A extends ArrayLike<number> & { slice(): A }>(data: A, where: Placement, opts?: ShardOptions): A;
export function shard(data: Tensor, where: Placement, opts?: ShardOptions): Tensor;
export function shard<T extends TensorContainer>(data: Dataset<T>, where: Placement, opts?: ShardOptions): Dataset<T>;
export function shard(data: unknown, where: Placement, opts: ShardOptions = {}): unknown {
  const { rank, size } = where;
  if (!(Number.isInteger(rank) && Number.isInteger(size) && rank >= 0 && rank < size)) {
    throw new Error(`unicc/tf: shard needs 0 <= rank < size, got rank ${rank}, size ${size}`);
  }
  const dropRemainder = opts.dropRemainder ?? true;
  if (data instanceof Tensor) {
    const idx = tensor1d(Array.from({ length: shardLength(data.shape[0] ?? 0, where, dropRemainder) }, (_, i) => rank + i * size), "int32");
    const rows = gather(data, idx);
    idx.dispose();
    return rows;
  }
  if (isDataset(data)) return shardDataset(data, where, dropRemainder);
  const arr = data as ArrayLike<unknown> & { slice(start: number, end: number): ArrayLike<unknown> & Record<number, unknown> };
  const out = arr.slice(0, shardLength(arr.length, where, dropRemainder));
  for (let i = 0; i < out.length; i++) out[i] = arr[rank + i * size];
  return out;
}

function isDataset(x: unknown): x is Dataset<TensorContainer> {
  return typeof (x as Dataset<TensorContainer>)?.iterator === "function";
}

function shardDataset<T extends TensorContainer>(data: Dataset<T>, { rank, size }: Placement, dropRemainder: boolean): Dataset<T> {
  const ds = generator(async function* () {
    const it = await data.iterator();
    // Read whole groups of `size` elements, so that an incomplete last group (whose length an
    // unknown-size dataset cannot tell in advance) can be dropped on every rank alike.
    for (;;) {
      let mine: T | undefined;
      let got = 0;
      for (; got < size; got++) {
        const next = await it.next();
        if (next.done) break;
        if (got === rank) mine = next.value;
        else dispose(next.value);
      }
      if (got === size || (!dropRemainder && got > rank)) yield mine as T;
      else if (got > rank) dispose(mine as T);
      if (got < size) return;
    }
  });
  // generator() cannot know the size; fit/fitDataset use it when it is known.
  (ds as { size: number | null }).size = data.size != null && Number.isFinite(data.size) ? shardLength(data.size, { rank, size }, dropRemainder) : data.size;
  return ds;
}
