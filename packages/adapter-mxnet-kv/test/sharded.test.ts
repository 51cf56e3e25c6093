import { randomInt } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";

import { diffs, lines, runJob, venvPython, WORKERS } from "./helpers.js";

let python: string;

beforeAll(() => {
  python = venvPython();
}, 600_000);

describe("ShardedSoftmaxClassifier on 4 ranks (each holding 1/4 of the class weights)", () => {
  it("equals one process's full fully connected layer + softmax cross-entropy: loss, embedding and gathered weight gradients (also with logits in the hundreds), and a DistributedTrainer step", async () => {
    const r = await runJob(["-np", "4", python, `${WORKERS}sharded.py`, String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(diffs(r, 4, () => 1e-5)).toEqual([9, 9, 9, 9]);
    for (let rank = 0; rank < 4; rank++) expect(lines(r, rank)).toContain(`OK sharded rank ${rank} of 4`);
  });
});
