import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { runJob } from "../../core-native/test/run-job.js";
import { JOB_TIMEOUT_MS, TEST_ENV, skipWithoutBackend } from "./helpers.js";

const TRAIN = fileURLToPath(new URL("../../../examples/tfjs-mnist/train.mjs", import.meta.url));

interface Summary {
  ranks: number;
  backend: string;
  epochs: { testAccuracy: number; steps: number }[];
}

async function train(np: number, backend: string): Promise<Summary> {
  const job = await runJob(["-np", String(np), "--", "node", TRAIN, "--epochs", "3", "--backend", backend], { env: TEST_ENV, timeoutMs: JOB_TIMEOUT_MS });
  const line = job.byRank.get(0)?.find((l) => l.startsWith("summary "));
  if (job.code !== 0 || !line) throw new Error(`train.mjs on ${np} ranks: exit ${job.code}\n${job.stdout}\n${job.stderr}`);
  return JSON.parse(line.slice("summary ".length)) as Summary;
}

// Its default backend, and TensorFlow's C library through tfjs-node.
describe.each(["wasm", "tensorflow"])("examples/tfjs-mnist on the %s backend", (backend) => {
  it("reaches on 4 ranks the test accuracy of 1 rank (same epochs and global batch) within 1 point", async (ctx) => {
    skipWithoutBackend(ctx, backend);
    const one = await train(1, backend);
    const four = await train(4, backend);
    expect([one.backend, four.backend]).toEqual([backend, backend]);
    expect(four.ranks).toBe(4);
    // Same global batch: 8000 images / 64 per step, whatever the number of ranks.
    for (const s of [one, four]) expect(s.epochs.map((e) => e.steps)).toEqual([125, 125, 125]);
    const a1 = one.epochs.at(-1)!.testAccuracy, a4 = four.epochs.at(-1)!.testAccuracy;
    expect(a1).toBeGreaterThan(0.88);
    expect(Math.abs(a4 - a1), `1 rank ${a1}, 4 ranks ${a4}`).toBeLessThanOrEqual(0.01);
  });
});
