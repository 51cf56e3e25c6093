// Elastic jobs with torch's DistributedOptimizer (unicc run --min-np/--max-np, unicc.elastic): real
// ranks SIGKILLed mid-step, during the re-forming, below the minimum, and ranks joining or leaving
// through the discovery script. Each run's final weights are checked against a reference that trains the same
// committed steps at the same sizes in one process, without unicc (workers/elastic_train.py).
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { expectReference as checkReference, finals } from "../../core-native/test/elastic-check.js";
import { bridgeLeftovers, runJob, venvPython, WORKERS, type JobResult } from "./helpers.js";

const TRAIN = `${WORKERS}elastic_train.py`;
const STEPS = 12;
let python: string;
let before: Set<string>;

beforeAll(() => {
  python = venvPython();
}, 600_000);

const shm = () => readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-"));
beforeEach(() => {
  before = new Set([...bridgeLeftovers(), ...shm()]);
});
afterEach(() => {
  expect([...bridgeLeftovers(), ...shm()].filter((f) => !before.has(f))).toEqual([]);
});

/** Processes of this run still alive (each run has its own seed on the command line). */
function survivors(seed: number): string[] {
  const mine = `elastic_train.py\0train\0${seed}\0`;
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "latin1").includes(mine);
    } catch {
      return false;
    }
  });
}

/** The weights a single process gets from the same steps at the same sizes. */
function reference(seed: number, sched: string): number[] {
  const out = execFileSync(python, [TRAIN, "reference", String(seed), String(STEPS), sched], { encoding: "utf8" });
  return /^FINAL (.*)$/m.exec(out)![1].split(" ").map(Number);
}

const expectReference = (r: JobResult, seed: number, sched: string, ranks: number) => checkReference(r, sched, ranks, (s) => reference(seed, s), 1e-12);

const elastic = (seed: number, np: number, min: number, max: number, kills: string, extra: string[] = [], env?: NodeJS.ProcessEnv) =>
  runJob(["--min-np", String(min), "--max-np", String(max), "-np", String(np), "--timeout", "5", ...extra, "--",
    python, TRAIN, "train", String(seed), String(STEPS), "2", kills], { env, timeoutMs: 100_000 });

describe("elastic jobs (torch, DistributedOptimizer)", () => {
  it("a rank SIGKILLed mid-step: the other 3 go on from the last commit, ending with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await elastic(seed, 4, 2, 4, "2@5");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, host \S+, pid \d+\) was killed by SIGKILL; re-forming the world without it/);
    expect(r.stderr).toMatch(/generation 2: 3 ranks/);
    // Killed in step 5, after the commit at step 4: step 4 is done again at 3 ranks.
    expectReference(r, seed, "0:4,4:3", 3);
    expect(survivors(seed)).toEqual([]);
  }, 120_000);

  it("a second rank killed while the world re-forms: the last 2 go on from the last commit", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await elastic(seed, 4, 2, 4, "2@5,3@reform");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 3 \(rank 2 of generation 2, .*\) was killed by SIGKILL/);
    expectReference(r, seed, "0:4,4:2", 2);
    expect(survivors(seed)).toEqual([]);
  }, 120_000);

  it("below --min-np the job ends with exit code 1, naming every rank it lost, and nothing of it is left", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await elastic(seed, 4, 3, 4, "2@3,3@7");
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      /unicc: elastic job ended: 2 ranks left, fewer than --min-np 3; lost: worker 2 \(rank 2 of generation 1, .*\) was killed by SIGKILL; worker 3 \(rank 2 of generation 2, .*\) was killed by SIGKILL/,
    );
    expect(finals(r)).toEqual([]);
    expect(survivors(seed)).toEqual([]);
  }, 120_000);

  /** A job whose discovery script lists `first` slots on localhost until rank 0 rewrites it to `then` at step 4. */
  async function discovered(seed: number, first: number, then: number): Promise<JobResult> {
    const dir = mkdtempSync(join(tmpdir(), "unicc-elastic-"));
    try {
      const hosts = join(dir, "hosts");
      writeFileSync(hosts, `localhost:${first}\n`);
      const script = join(dir, "discover.sh");
      writeFileSync(script, `#!/bin/sh\ncat ${hosts}\n`);
      chmodSync(script, 0o755);
      return await elastic(seed, first, 2, 3, "", ["--host-discovery-script", script, "--discovery-interval", "0.2"], {
        JOIN_AT: "4", JOIN_HOSTS: hosts, JOIN_LINE: `localhost:${then}`, JOIN_SIZE: String(then),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("a slot added by the discovery script joins at the next commit, gets the survivors' state, and the job ends at 3 ranks with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await discovered(seed, 2, 3);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/generation 2: 3 ranks \(1 joined\)/);
    expectReference(r, seed, "0:2,4:3", 3);
    expect(survivors(seed)).toEqual([]);
  }, 120_000);

  it("a slot the discovery script stops listing: its rank leaves at the next commit and is stopped, and the job ends at 2 ranks with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await discovered(seed, 3, 2);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopped worker 2 \(rank 2 of generation 1, .*\): slot no longer listed/);
    expect(r.stderr).toMatch(/generation 2: 2 ranks/);
    expectReference(r, seed, "0:3,4:2", 2);
    expect(survivors(seed)).toEqual([]);
  }, 120_000);
});
