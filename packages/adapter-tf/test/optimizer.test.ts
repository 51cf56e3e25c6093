import { describe, expect, it } from "vitest";

import { BACKENDS, backendLine, maxAbs, maxDiff, perRank, runWorker, skipWithoutBackend } from "./helpers.js";

interface StepResult {
  init: number[][];
  final: number[][];
}

/**
 * The weights after training on `np` ranks (DistributedOptimizer, 1/np of every global batch each)
 * must equal, within 1e-5 relative, those of one plain tfjs process on the whole global batches,
 * and the ranks must agree exactly. The updates themselves (final - init) are compared too, so
 * that a wrong scale of the averaged gradient cannot hide behind the size of the weights.
 */
async function expectEquivalent(
  np: number,
  cases: string[],
  backend = "cpu",
  { compression = "none", hosts, tolerance = 1e-5 }: { compression?: string; hosts?: string; tolerance?: number } = {},
) {
  const args = ["--backend", backend, "--cases", cases.join(",")];
  const ref = await runWorker(1, "train-step.mjs", [...args, "--plain", "--ranks", String(np)]);
  const dist = await runWorker(np, "train-step.mjs", [...args, "--compression", compression], 0, hosts);
  let worstUpdate = 0;
  for (const job of [ref, dist]) expect(job.byRank.get(0)).toContain(backendLine(backend));
  for (const name of cases) {
    const [want] = perRank<StepResult>(ref, `RESULT ${name}`, 1)[0];
    const got = perRank<StepResult>(dist, `RESULT ${name}`, np).map((r) => r[0]);
    for (let r = 1; r < np; r++) expect(got[r].final, `${name}: rank ${r} vs rank 0`).toEqual(got[0].final);
    want.final.forEach((w, t) => {
      const g = got[0].final[t];
      expect(got[0].init[t], `${name}: same start`).toEqual(want.init[t]);
      expect(maxDiff(g, w) / maxAbs(w), `${name} tensor ${t}: weights, relative`).toBeLessThan(tolerance);
      const wantStep = w.map((v, i) => v - want.init[t][i]);
      const gotStep = g.map((v, i) => v - got[0].init[t][i]);
      if (maxAbs(wantStep) === 0) expect(maxAbs(gotStep), `${name} tensor ${t} must not move`).toBe(0);
      else {
        const err = maxDiff(gotStep, wantStep) / maxAbs(wantStep);
        expect(err, `${name} tensor ${t}: update, relative`).toBeLessThan(tolerance * 10);
        worstUpdate = Math.max(worstUpdate, err);
      }
    });
  }
  return worstUpdate;
}

describe("DistributedOptimizer", () => {
  it("2 hosts x 2 ranks with fp16 gradients across hosts: the same steps within half precision's rounding", async () => {
    // sgd's update is the gradient itself, so the update error is fp16's (2^-11 per rounding, a
    // few roundings); with exact transfer the same comparison holds to 1e-5.
    const worst = await expectEquivalent(4, ["sgd-minimize", "sgd-fit"], "cpu", { compression: "fp16", hosts: "a:2,b:2", tolerance: 1e-3 });
    expect(worst, "no rounding at all: the gradients did not travel in 16 bits").toBeGreaterThan(1e-5);
  });
});

describe.each(BACKENDS)("DistributedOptimizer on the %s backend", (backend) => {
  it("4 ranks with batch b take the steps of 1 rank with batch 4b: sgd, adam, momentum; fit, minimize, applyGradients", async (ctx) => {
    skipWithoutBackend(ctx, backend);
    // The worker shifts layer-name counters per rank (matching by position is what makes this
    // work), uses one variable on rank 0 only (the others send zeros) and one on no rank (which
    // must not move, even under adam).
    await expectEquivalent(4, ["sgd-fit", "adam-fit", "sgd-minimize", "adam-minimize", "momentum-apply"], backend);
  });

  it("leaks no tensors across custom-loop steps or fit epochs", async (ctx) => {
    skipWithoutBackend(ctx, backend);
    const job = await runWorker(4, "leak.mjs", ["--backend", backend]);
    expect(job.byRank.get(0)).toContain(backendLine(backend));
    for (const [c] of perRank<{ minimize: number[]; fit: number[]; steps: number }>(job, "COUNTS", 4)) {
      // The first step creates adam's moments; from then on the count must not move.
      expect(new Set(c.minimize.slice(1)).size, `minimize counts ${c.minimize}`).toBe(1);
      expect(c.fit.every((n) => n === c.minimize[1]), `fit counts ${c.fit} vs ${c.minimize[1]}`).toBe(true);
      expect(c.steps).toBe(12 + 6 * 4);
    }
  });

  it("reports models that differ between ranks on every rank, naming the variable", async (ctx) => {
    skipWithoutBackend(ctx, backend);
    const job = await runWorker(3, "mismatch.mjs", ["--backend", backend]);
    expect(job.byRank.get(0)).toContain(backendLine(backend));
    const expected = (rank: number) => (rank === 2 ? /#0: on rank 2 it is "dense_Dense3\/kernel" with shape \[12,9\] \(108 elements\); rank 0: 96 elements, rank 1: 96 elements/ : new RegExp(`#0: on rank ${rank} it is "dense_Dense${rank + 1}/kernel" with shape \\[12,8\\] \\(96 elements\\);.* rank 2: 108 elements`));
    for (const rank of [0, 1, 2]) {
      const lines = job.byRank.get(rank) ?? [];
      const broadcast = lines.find((l) => l.startsWith("BROADCAST-"));
      const fit = lines.find((l) => l.startsWith("FIT-"));
      expect(broadcast, `rank ${rank}`).toMatch(/^BROADCAST-ERROR unicc\/tf: the weights to broadcast differ between ranks/);
      expect(broadcast).toMatch(expected(rank));
      expect(fit, `rank ${rank}`).toMatch(/^FIT-ERROR unicc\/tf: the variables to update differ between ranks/);
      expect(fit).toMatch(expected(rank));
    }
  });
});
