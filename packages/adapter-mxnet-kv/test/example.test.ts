import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

import { lines, runJob, venvPython } from "./helpers.js";

let python: string;

beforeAll(() => {
  python = venvPython();
}, 600_000);

describe("examples/mxnet-digits", () => {
  it("4 ranks (gluon.Trainer on dist_sync_unicc) reach the test accuracy of 1 rank (DistributedTrainer) within 1 point", async () => {
    const TRAIN = fileURLToPath(new URL("../../../examples/mxnet-digits/train.py", import.meta.url));
    const accuracy = async (np: number, mode: string) => {
      const r = await runJob(["-np", String(np), python, TRAIN, "--epochs", "2", "--mode", mode]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(lines(r, 0)).toMatch(/epoch 2: [\d.]+ s, \d+ images\/s, exchange \d+% of the step, loss [\d.]+, test accuracy/);
      return Number(/FINAL accuracy ([\d.]+)/.exec(lines(r, 0))![1]);
    };
    const one = await accuracy(1, "horovod");
    const four = await accuracy(4, "kvstore");
    expect(one).toBeGreaterThan(0.85);
    expect(Math.abs(four - one)).toBeLessThanOrEqual(0.01);
  });
});
