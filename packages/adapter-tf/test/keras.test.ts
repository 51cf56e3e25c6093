// unicc.tensorflow and unicc.tensorflow.keras (Python TensorFlow 2.21, Keras 3) on real ranks
// through `unicc run`; the workers print OK/DIFF/... lines that these tests check.
import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

import { expectDeathNamed } from "../../core-native/test/death-check.js";
import { expectReference } from "../../core-native/test/elastic-check.js";
import { lines, runJob, type JobResult } from "../../core-native/test/run-job.js";

const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));
const SETUP = fileURLToPath(new URL("../scripts/setup-keras-venv.sh", import.meta.url));
const TIMEOUT_S = 10;
// 4 ranks importing TensorFlow (about 4 s each) on a loaded 2-core machine take a while.
const JOB_MS = 240_000;
let python: string;

beforeAll(() => {
  python = execFileSync("bash", [SETUP], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
}, 900_000);

async function run(np: number, args: string[], extra: string[] = []): Promise<JobResult> {
  return runJob(["-np", String(np), ...extra, python, ...args], { timeoutMs: JOB_MS });
}

describe("one step on 4 ranks with batch b equals one process on 4b", () => {
  for (const mode of ["fit", "tape"]) {
    it(mode === "fit" ? "model.fit with DistributedOptimizer(Adam), 2 steps" : "custom loop with DistributedGradientTape (eager, then tf.function), 2 steps", async () => {
      const r = await run(4, [`${WORKERS}keras_equivalence.py`, mode, String(randomInt(1, 1 << 20))]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      for (let rank = 0; rank < 4; rank++) {
        expect(lines(r, rank)).toContain(`OK ${mode}`);
        const m = /DIFF (.+) (\S+)$/m.exec(lines(r, rank));
        expect(m, lines(r, rank)).not.toBeNull();
        expect(Number(m![2]), m![1]).toBeLessThan(1e-5);
      }
    }, JOB_MS);
  }
});

describe("between hosts (2 emulated hosts of 2 ranks), gradients in 16 bits on request", () => {
  const cases: [string, string, NodeJS.ProcessEnv][] = [
    ["exact", "fit", {}],
    ["DistributedOptimizer(compression=Compression.fp16)", "fit-fp16", {}],
    ["UNICC_COMPRESSION=fp16", "fit", { UNICC_COMPRESSION: "fp16" }],
  ];
  for (const [what, mode, env] of cases) {
    it(what, async () => {
      const r = await runJob(["-H", "a:2,b:2", "--launch-agent", "env", python, `${WORKERS}keras_equivalence.py`, mode, String(randomInt(1, 1 << 20))],
        { timeoutMs: JOB_MS, env });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      for (let rank = 0; rank < 4; rank++) {
        const d = Number(/DIFF .+ (\S+)$/m.exec(lines(r, rank))![1]);
        if (what === "exact") expect(d).toBeLessThan(1e-5);
        // fp16 rounds each gradient to 11 bits: close to the reference, and not exact
        else expect(d > 1e-6 && d < 1e-2, `rank ${rank}: ${d}`).toBe(true);
      }
    }, JOB_MS);
  }
});

describe("one copy each way", () => {
  it("inside a tf.function the exchange reads the gradients' own buffers, and its outputs are the arrays it copied into", async () => {
    const r = await run(2, [`${WORKERS}keras_equivalence.py`, "copies", String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 2; rank++) {
      expect(lines(r, rank)).toContain("IN-SHARED True");
      expect(lines(r, rank)).toContain("OUT-ADOPTED True");
    }
  }, JOB_MS);
});

describe("Keras callbacks", () => {
  it("BroadcastGlobalVariablesCallback(0) makes differing initial weights rank 0's before the first step; broadcast_variables in a tf.function, broadcast_object", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await run(4, [`${WORKERS}keras_callbacks.py`, "broadcast", String(seed)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const sums = new Set<string>();
    for (let rank = 0; rank < 4; rank++) {
      const m = /DIFF broadcast-then-step (\S+)/.exec(lines(r, rank));
      expect(m, lines(r, rank)).not.toBeNull();
      expect(Number(m![1])).toBeLessThan(1e-5);
      sums.add(/CHECKSUM (\S+)/.exec(lines(r, rank))![1]);
      expect(lines(r, rank)).toContain("IN-FUNCTION 3.5 [0, 4, 8, 12]");
      expect(lines(r, rank)).toContain(`OBJECT {'from': 1, 'seed': ${seed}}`);
    }
    expect(sums.size, "weights and optimizer state identical on every rank").toBe(1);
  }, JOB_MS);

  it("MetricAverageCallback: History holds the ranks' mean loss and accuracy, the same on every rank", async () => {
    const r = await run(4, [`${WORKERS}keras_callbacks.py`, "metrics", String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const epoch of [0, 1]) {
      for (const key of ["loss", "accuracy"]) {
        const value = (tag: string, rank: number) =>
          Number(new RegExp(`^${tag} ${epoch} ${key} (\\S+)$`, "m").exec(lines(r, rank))![1]);
        const own = [0, 1, 2, 3].map((rank) => value("OWN", rank));
        const mean = own.reduce((a, b) => a + b, 0) / 4;
        if (key === "loss") expect(new Set(own).size, "ranks' own losses differ (their data does)").toBeGreaterThan(1);
        for (let rank = 0; rank < 4; rank++) expect(Math.abs(value("HIST", rank) - mean)).toBeLessThan(1e-6 * Math.max(1, mean));
      }
    }
  }, JOB_MS);
});

describe("failures", () => {
  it("a rank killed during model.fit: every other rank's fit raises naming it, within the bound", async () => {
    const victim = randomInt(0, 3);
    const r = await run(3, [`${WORKERS}keras_faults.py`, String(victim)], ["--timeout", String(TIMEOUT_S)]);
    expectDeathNamed(r, victim, 3, TIMEOUT_S * 1000);
  }, JOB_MS);
});

describe("elastic (unicc.elastic.State with KerasState)", () => {
  it("a rank SIGKILLed mid-step: the other 2 go on from the last commit, momenta included, ending with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const train = `${WORKERS}keras_elastic.py`;
    const r = await run(3, [train, "train", String(seed), "10", "2", "2@5"], ["--min-np", "2", "--timeout", String(TIMEOUT_S)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, .*\) was killed by SIGKILL; re-forming the world without it/);
    const reference = (sched: string) => {
      const out = execFileSync(python, [train, "reference", String(seed), "10", sched], { encoding: "utf8" });
      return /^FINAL (.*)$/m.exec(out)![1].split(" ").map(Number);
    };
    expectReference(r, "0:3,4:2", 2, reference, 1e-10);
  }, JOB_MS);
});

describe("examples/keras-digits", () => {
  it("4 ranks reach the test accuracy of 1 rank within 1 point, with a progress line", async () => {
    const TRAIN = fileURLToPath(new URL("../../../examples/keras-digits/train.py", import.meta.url));
    const accuracy = async (np: number) => {
      const r = await run(np, [TRAIN, "--epochs", "2"]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(lines(r, 0)).toMatch(/epoch 2 \[#+\.*\] +\d+% loss [\d.]+ \(rank 0\)/);
      expect(lines(r, 0)).toMatch(/epoch 2: [\d.]+ s, \d+ images\/s, [\d.]+ steps\/s, exchange [\d.]+% of step time, loss [\d.]+/);
      return Number(/FINAL accuracy ([\d.]+)/.exec(lines(r, 0))![1]);
    };
    const one = await accuracy(1);
    const four = await accuracy(4);
    expect(one).toBeGreaterThan(0.85);
    expect(Math.abs(four - one)).toBeLessThanOrEqual(0.01);
  }, 2 * JOB_MS);
});
