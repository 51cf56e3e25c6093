import type { World } from "@unicc/core";

/** The part of a unicc `World` the adapter uses; a `World` from `init()` is one. */
export type Comm = Pick<
  World,
  "rank" | "size" | "allreduce" | "allreduceSync" | "allreduceNamedSync" | "allgatherSync" | "broadcast"
>;

/** One tensor in a collective's layout: what a mismatch message names. */
export interface Slot {
  name: string;
  shape: readonly number[];
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

// Equal element counts with different shapes (a transposed kernel) would still reduce without
// complaint, so the fingerprint carries a hash of the shape as well.
function shapeHash(shape: readonly number[]): number {
  let h = 0x811c9dc5 ^ shape.length;
  for (const d of shape) h = Math.imul(h ^ d, 0x01000193);
  return h | 0;
}

function describe(slot: Slot | undefined): string {
  return slot ? `"${slot.name}" with shape [${slot.shape.join(",")}] (${elementCount(slot.shape)} elements)` : "no tensor";
}

/**
 * Checks that every rank has the same layout (count, element counts and shapes), with two small
 * allgathers; every rank must call it at the same point. On a mismatch it throws on every rank,
 * naming the first differing tensor by index and, for this rank, by name and shape. The world
 * stays usable afterwards: only successful collectives were used to find out.
 */
export function checkLayout(comm: Comm, slots: readonly Slot[], what: string): void {
  if (comm.size === 1) return;
  const counts = comm.allgatherSync(Int32Array.of(slots.length));
  const longest = Math.max(...counts);
  const mine = new Int32Array(2 * longest).fill(-1);
  slots.forEach((s, i) => {
    mine[2 * i] = elementCount(s.shape);
    mine[2 * i + 1] = shapeHash(s.shape);
  });
  const all = comm.allgatherSync(mine);
  const at = (r: number, i: number) => [all[r * 2 * longest + 2 * i], all[r * 2 * longest + 2 * i + 1]] as const;
  for (let i = 0; i < longest; i++) {
    const [n0, h0] = at(0, i);
    let same = true;
    for (let r = 1; r < comm.size && same; r++) same = at(r, i)[0] === n0 && at(r, i)[1] === h0;
    if (same) continue;
    const others: string[] = [];
    for (let r = 0; r < comm.size; r++) {
      if (r === comm.rank) continue;
      const [n, h] = at(r, i);
      const mineN = mine[2 * i], mineH = mine[2 * i + 1];
      others.push(`rank ${r}: ${n < 0 ? "no tensor" : n === mineN && h !== mineH ? `${n} elements, another shape` : `${n} elements`}`);
    }
    throw new Error(
      `unicc/tf: ${what} differ between ranks at #${i}: on rank ${comm.rank} it is ${describe(slots[i])}; ` +
        `${others.join(", ")}. Every rank must build the same model.`,
    );
  }
}
