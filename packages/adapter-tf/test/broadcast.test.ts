import { describe, expect, it } from "vitest";

import { perRank, runWorker } from "./helpers.js";

describe("broadcastWeights and broadcastOptimizerState", () => {
  it("make differing initial weights and optimizer states identical to rank 0's", async () => {
    const job = await runWorker(4, "broadcast.mjs");
    type W = { model: number[][]; vars: number[][] };
    const before = perRank<W>(job, "BEFORE", 4).map((r) => r[0]);
    const after = perRank<W>(job, "AFTER", 4).map((r) => r[0]);
    expect(before[1].model, "ranks start apart").not.toEqual(before[0].model);
    expect(before[1].vars).not.toEqual(before[0].vars);
    for (let r = 0; r < 4; r++) {
      expect(after[r].model, `rank ${r} model`).toEqual(before[0].model);
      expect(after[r].vars, `rank ${r} variables`).toEqual(before[0].vars);
    }

    // Rank 0 took 2 adam steps, rank 1 one, ranks 2 and 3 none.
    const state = perRank<{ iterations: number; names: string[]; values: number[][] }>(job, "STATE", 4).map((r) => r[0]);
    expect(state[0].iterations).toBe(2);
    expect(state[0].names).toHaveLength(9); // iter + m and v for 4 weights
    for (let r = 1; r < 4; r++) expect(state[r], `rank ${r} optimizer state`).toEqual(state[0]);
    // Replaced state is disposed; ranks without state gain the root's 8 moments.
    expect(perRank<{ grown: number }>(job, "TENSORS", 4).map((r) => r[0].grown)).toEqual([0, 0, 8, 8]);

    const stepped = perRank<{ iterations: number; model: number[][] }>(job, "STEPPED", 4).map((r) => r[0]);
    for (let r = 0; r < 4; r++) {
      expect(stepped[r].iterations).toBe(3);
      expect(stepped[r].model, `rank ${r} after a distributed step`).toEqual(stepped[0].model);
    }
    expect(stepped[0].model).not.toEqual(after[0].model);
  });
});
