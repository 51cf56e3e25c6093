import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";

import { shard } from "../src/index.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("shard", () => {
  it("gives each rank every size-th element, the same count everywhere by default", () => {
    expect([0, 1, 2, 3].map((rank) => shard(range(10), { rank, size: 4 }))).toEqual([
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ]);
    expect([0, 1, 2, 3].map((rank) => shard(range(10), { rank, size: 4 }, { dropRemainder: false }))).toEqual([
      [0, 4, 8],
      [1, 5, 9],
      [2, 6],
      [3, 7],
    ]);
    expect(shard(Float32Array.from(range(9)), { rank: 2, size: 3 })).toEqual(Float32Array.of(2, 5, 8));
    expect(shard(range(3), { rank: 0, size: 1 })).toEqual([0, 1, 2]);
    expect(() => shard(range(3), { rank: 4, size: 4 })).toThrow(/0 <= rank < size/);
  });

  it("makes the ranks' batches add up to the global batches, in order", () => {
    // rank r's batch k of size b, over all ranks, is exactly global batch k of size b * size.
    const size = 4, b = 3, data = range(48);
    const shards = range(size).map((rank) => shard(data, { rank, size }));
    for (let k = 0; k < 4; k++) {
      const union = shards.flatMap((s) => s.slice(k * b, (k + 1) * b)).sort((x, y) => x - y);
      expect(union).toEqual(data.slice(k * b * size, (k + 1) * b * size));
    }
  });

  it("splits a tensor along its first axis", () => {
    const t = tf.tensor2d(range(20), [10, 2]);
    const s = shard(t, { rank: 1, size: 3 });
    expect(s.shape).toEqual([3, 2]);
    expect(Array.from(s.dataSync())).toEqual([2, 3, 8, 9, 14, 15]);
    tf.dispose([t, s]);
  });

  it("filters a tf.data dataset, disposing what other ranks take, and is re-iterable", async () => {
    const before = tf.memory().numTensors;
    const ds = tf.data.array(range(11)).map((x) => tf.scalar(x as number));
    const mine = shard(ds, { rank: 2, size: 4 });
    expect(mine.size).toBe(2);
    for (let pass = 0; pass < 2; pass++) {
      const got = await mine.mapAsync(async (t) => (await (t as tf.Scalar).data())[0]).toArray();
      expect(got).toEqual([2, 6]);
    }
    // Unknown size: whole groups only, so every rank stops after the same number of elements.
    const unknown = tf.data.generator(function* () {
      for (let i = 0; i < 11; i++) yield i;
    });
    expect(unknown.size).toBeNull();
    expect(await shard(unknown, { rank: 3, size: 4 }).toArray()).toEqual([3, 7]);
    expect(await shard(unknown, { rank: 2, size: 4 }, { dropRemainder: false }).toArray()).toEqual([2, 6, 10]);
    expect(await shard(unknown, { rank: 3, size: 4 }, { dropRemainder: false }).toArray()).toEqual([3, 7]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
