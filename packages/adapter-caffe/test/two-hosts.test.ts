// Caffe ranks on 2 emulated hosts x 2, one launcher per host (`unicc run --nnodes 2 --bridge`), ranks
// in the bullseye root on each: fp32 across hosts stays the one-process result, and fp16/bf16
// exchange stays close to it while halving what crosses the links.
import { randomInt } from "node:crypto";
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";
import { bullseyeRoot, IN_ROOT, jobFolder, lines, perNodeJob, WORKERS } from "./helpers.js";

const skip = netnsUnavailable();
const [BATCH, ITERS, HIDDEN] = [4, 3, 256];
// The MLP of workers/nets.py: 20 inputs, 5 classes; ip2 and ip3 share one weight and bias.
const VALUES = 20 * HIDDEN + HIDDEN + HIDDEN * HIDDEN + HIDDEN + HIDDEN * 5 + 5;

describe.skipIf(skip !== null)("2 emulated hosts x 2 Caffe ranks, one launcher per host with --bridge", () => {
  let c: Cluster;
  let job: { dir: string; env: NodeJS.ProcessEnv };
  beforeAll(async () => {
    bullseyeRoot();
    job = jobFolder();
    c = await up({ hosts: 2, tag: `caffe${process.pid}` });
  }, 600_000);
  afterAll(async () => {
    await c?.down();
    if (job) rmSync(job.dir, { recursive: true, force: true });
  });

  it("fp32 equals one process with the whole batch; fp16 and bf16 stay close (not exact) and send half the gradient bytes", async () => {
    const seed = String(randomInt(1, 1 << 20));
    const run = async (compression: string) => {
      const r = await perNodeJob(c, 2, ["--timeout", "20", "--", IN_ROOT, "python3", `${WORKERS}equivalence.py`, seed, job.dir,
        String(BATCH), String(ITERS), "sgd", compression, String(HIDDEN), "tanh"], job.env);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const m = /^(?:OK|DIFF) sgd err=(\S+) moved=(\S+) blobs=6 values=(\d+)$/m.exec(lines(r, 0));
      expect(m, lines(r, 0)).not.toBeNull();
      expect(Number(m![3])).toBe(VALUES);
      expect(Number(m![2])).toBeGreaterThan(1e-3);
      const digests = [0, 1, 2, 3].map((rank) => /WEIGHTS sgd (\w+)/.exec(lines(r, rank))?.[1]);
      expect(new Set(digests).size, digests.join(" ")).toBe(1); // every rank ends equal, 16-bit too
      return { err: Number(m![1]), moved: Number(m![2]), sent: r.sent[0] + r.sent[1] };
    };
    const exact = await run("none");
    expect(exact.err).toBeLessThanOrEqual(1e-5);
    // Hierarchical: each host sends its half of every reduced block to the other and gets the
    // other half back, so per iteration each host sends about one copy of the gradients.
    const gradientBytes = 2 * ITERS * VALUES * 4;
    // Each coded gradient is off by at most its format's unit roundoff (2^-11, 2^-8), and 3
    // iterations of momentum carry that into the weights: bound the error by 8 roundoffs of how
    // far training moved them (measured at most 1.6 over 25 seeds). The hidden layers are TanH:
    // with ReLU a rounding now and then flips a unit on or off for one sample, which moves the
    // weights by that sample's share of the gradient (one run: 123 roundoffs, about 1/16 of the
    // move), whatever the format's precision.
    for (const [compression, roundoff] of [["fp16", 2 ** -11], ["bf16", 2 ** -8]] as const) {
      const coded = await run(compression);
      expect(coded.err, compression).toBeLessThanOrEqual(8 * roundoff * coded.moved);
      expect(coded.err, compression).toBeGreaterThan(1e-6); // fp32 across hosts: ~1e-7
      const saved = (exact.sent - coded.sent) / (gradientBytes / 2);
      expect(saved, `${compression}: sent ${coded.sent} bytes against ${exact.sent} in fp32`).toBeGreaterThan(0.8);
      expect(saved).toBeLessThan(1.2);
    }
  }, 300_000);
});
