// An elastic job with gluon (unicc run --min-np, unicc.elastic.State with unicc.mxnet.elastic.GluonState):
// a rank SIGKILLed mid-step; the others go on from the last commit (parameters and the Trainer's
// momenta), ending with the weights one process gets from the same steps (workers/elastic.py).
import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { readdirSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";

import { expectReference } from "../../core-native/test/elastic-check.js";
import { runJob, venvPython, WORKERS } from "./helpers.js";

const TRAIN = `${WORKERS}elastic.py`;
const STEPS = 10;
let python: string;

beforeAll(() => {
  python = venvPython();
}, 600_000);

const shm = () => readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-"));

describe("elastic jobs (gluon, DistributedTrainer)", () => {
  it("a rank SIGKILLed mid-step: the other 2 go on from the last commit, momenta included, ending with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const before = new Set(shm());
    const r = await runJob(["--min-np", "2", "-np", "3", "--timeout", "5", "--", python, TRAIN, "train", String(seed), String(STEPS), "2", "2@5"], {
      timeoutMs: 100_000,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, .*\) was killed by SIGKILL; re-forming the world without it/);
    const reference = (sched: string) => {
      const out = execFileSync(python, [TRAIN, "reference", String(seed), String(STEPS), sched], { encoding: "utf8" });
      return /^FINAL (.*)$/m.exec(out)![1].split(" ").map(Number);
    };
    expectReference(r, "0:3,4:2", 2, reference, 1e-10);
    expect(shm().filter((f) => !before.has(f))).toEqual([]);
  }, 120_000);
});
