// Elastic tfjs jobs: DistributedOptimizer over an ElasticWorld, ElasticState and runElastic. A rank
// SIGKILLed mid-step: the job goes on at 3 from the last commit and ends with the weights of a
// reference that trains the same committed steps at the same sizes in one process, without unicc.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { runJob } from "../../core-native/test/run-job.js";
import { JOB_TIMEOUT_MS, maxAbs, maxDiff, TEST_ENV } from "./helpers.js";

const WORKER = fileURLToPath(new URL("./workers/elastic.mjs", import.meta.url));
const STEPS = 10;

describe("elastic tfjs jobs", () => {
  it("a rank SIGKILLed mid-step: the other 3 go on from the last commit, ending with the reference's weights", async () => {
    const seed = 1 + Math.floor(Math.random() * 100_000);
    const shm = () => readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-"));
    const before = new Set(shm());
    const r = await runJob(
      ["--min-np", "2", "--max-np", "4", "-np", "4", "--timeout", "5", "--", "node", WORKER, "train",
        "--seed", String(seed), "--steps", String(STEPS), "--commit-every", "2", "--kill", "2@5"],
      { env: TEST_ENV, timeoutMs: JOB_TIMEOUT_MS },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, .*\) was killed by SIGKILL; re-forming the world without it/);
    // Killed in step 5, after the commit at step 4: step 4 is done again at 3 ranks.
    const sched = [...r.stdout.matchAll(/^\[\d+\] START step=(\d+) size=(\d+)$/gm)].map((m) => `${m[1]}:${m[2]}`).join(",");
    expect(sched).toBe("0:4,4:3");
    const finals = [...r.stdout.matchAll(/^\[\d+\] FINAL (.*)$/gm)].map((m) => JSON.parse(m[1]) as number[]);
    expect(finals).toHaveLength(3);
    const ref = execFileSync("node", [WORKER, "reference", "--seed", String(seed), "--steps", String(STEPS), "--schedule", sched], { encoding: "utf8", env: { ...process.env, ...TEST_ENV } });
    const want = JSON.parse(/^FINAL (.*)$/m.exec(ref)![1]) as number[];
    for (const got of finals) {
      expect(got).toEqual(finals[0]);
      expect(maxDiff(got, want) / maxAbs(want)).toBeLessThan(1e-5);
    }
    expect(shm().filter((f) => !before.has(f))).toEqual([]);
  }, JOB_TIMEOUT_MS + 30_000);
});
