// Elastic tfjs jobs: DistributedOptimizer over an ElasticWorld, ElasticState and runElastic. A rank
// SIGKILLed mid-step: the job goes on at 3 from the last commit and ends with the weights of a
// reference that trains the same committed steps at the same sizes in one process, without unicc.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runJob, type JobResult } from "../../core-native/test/run-job.js";
import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";
import { JOB_TIMEOUT_MS, maxAbs, maxDiff, TEST_ENV } from "./helpers.js";

const WORKER = fileURLToPath(new URL("./workers/elastic.mjs", import.meta.url));
const STEPS = 10;

const shm = () => readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-"));

/** "0:4,4:3" from the START lines, and every rank's final weights equal to the reference's for it. */
function expectReference(r: JobResult, seed: number, sched: string, ranks: number): void {
  expect([...r.stdout.matchAll(/^\[\d+\] START step=(\d+) size=(\d+)$/gm)].map((m) => `${m[1]}:${m[2]}`).join(","), r.stdout + r.stderr).toBe(sched);
  const finals = [...r.stdout.matchAll(/^\[\d+\] FINAL (.*)$/gm)].map((m) => JSON.parse(m[1]) as number[]);
  expect(finals).toHaveLength(ranks);
  const ref = execFileSync("node", [WORKER, "reference", "--seed", String(seed), "--steps", String(STEPS), "--schedule", sched], { encoding: "utf8", env: { ...process.env, ...TEST_ENV } });
  const want = JSON.parse(/^FINAL (.*)$/m.exec(ref)![1]) as number[];
  for (const got of finals) {
    expect(got).toEqual(finals[0]);
    expect(maxDiff(got, want) / maxAbs(want)).toBeLessThan(1e-5);
  }
}

const train = (seed: number, fault: string[]) => ["--", "node", WORKER, "train", "--seed", String(seed), "--steps", String(STEPS), "--commit-every", "2", ...fault];

describe("elastic tfjs jobs", () => {
  it("a rank SIGKILLed mid-step: the other 3 go on from the last commit, ending with the reference's weights", async () => {
    const seed = 1 + Math.floor(Math.random() * 100_000);
    const before = new Set(shm());
    const r = await runJob(["--min-np", "2", "--max-np", "4", "-np", "4", "--timeout", "5", ...train(seed, ["--kill", "2@5"])], { env: TEST_ENV, timeoutMs: JOB_TIMEOUT_MS });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, .*\) was killed by SIGKILL; re-forming the world without it/);
    // Killed in step 5, after the commit at step 4: step 4 is done again at 3 ranks.
    expectReference(r, seed, "0:4,4:3", 3);
    expect(shm().filter((f) => !before.has(f))).toEqual([]);
  }, JOB_TIMEOUT_MS + 30_000);
});

const skip = netnsUnavailable();
describe.skipIf(skip !== null)(`elastic tfjs jobs on 2 emulated hosts${skip ? `: skipped, ${skip}` : ""}`, () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await up({ hosts: 2 });
  });
  afterAll(async () => {
    await cluster?.down();
  });

  it("2 hosts x 2 ranks, the second host's link cut mid-step: its ranks end within the round's time, the first host's 2 go on from the last commit", async () => {
    const seed = 1 + Math.floor(Math.random() * 100_000);
    const hosts = cluster.hosts.map((h) => `${h.name}:2`).join(",");
    const r = await runJob(
      ["--min-np", "2", "--max-np", "4", "-H", hosts, "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr,
        "--timeout", "3", ...train(seed, ["--cut", "2@5"])],
      { env: TEST_ENV, timeoutMs: JOB_TIMEOUT_MS },
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // Each of the cut host's ranks ends one of two ways, whichever comes first (both bounded by
    // --timeout 3): the launcher stops it when the round's time is up, or it gives up reaching
    // the store from a host without a link, and exits.
    for (const w of [2, 3]) {
      const who = `worker ${w} \\(rank ${w} of generation 1, host ${cluster.hosts[1].name}, pid \\d+\\)`;
      const stopped = new RegExp(`stopped [^\\n]*${who}[^\\n]*: they did not rejoin within 3 s \\(--timeout\\)`);
      const gaveUp = new RegExp(`${who} exited with code 1; re-forming the world without it`);
      const unreachable = new RegExp(`\\[${w}\\] Error: unicc: the rendezvous store at \\S+ did not come up within 3 s \\(connect ENETUNREACH`);
      expect(stopped.test(r.stderr) || (gaveUp.test(r.stderr) && unreachable.test(r.stderr)), `worker ${w}:\n${r.stderr}`).toBe(true);
    }
    expect(r.stderr).toMatch(/generation 2: 2 ranks/);
    expectReference(r, seed, "0:4,4:2", 2);
  }, JOB_TIMEOUT_MS + 30_000);
});
