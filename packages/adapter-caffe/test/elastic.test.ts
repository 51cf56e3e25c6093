// Elastic jobs with Caffe (unicc run --min-np --bridge, unicc.elastic.State holding
// unicc.caffe.elastic.SolverState): real Caffe ranks in the bullseye root, their bridges started
// by the launcher, a rank SIGKILLed mid-training or one joining through the discovery script. The
// final weights are checked against one plain pycaffe process that does the same committed
// iterations at the same sizes on the combined batches (workers/elastic.py).
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { expectReference } from "../../core-native/test/elastic-check.js";
import { CLI, collect } from "../../core-native/test/run-job.js";
import { caffeJobs, IN_ROOT, inRoot, WORKERS } from "./helpers.js";

const TRAIN = `${WORKERS}elastic.py`;
const STEPS = 10;
const job = caffeJobs();

/** Live bridge processes serving slabs in `dir` (the bridges of one --bridge-dir job). */
function bridgesIn(dir: string): string[] {
  return readdirSync("/proc").filter((p) => {
    try {
      const running = !/\) Z /.test(readFileSync(`/proc/${p}/stat`, "latin1")); // a zombie is gone but for its reaping
      return /^\d+$/.test(p) && running && readFileSync(`/proc/${p}/cmdline`, "latin1").includes(`\0--slab-dir\0${dir}\0`);
    } catch {
      return false;
    }
  });
}

/** The weights one pycaffe process gets from the same iterations at the same sizes. */
function reference(seed: number, sched: string): number[] {
  const out = inRoot(job.env, ["python3", TRAIN, "reference", String(seed), job.dir, String(STEPS), sched]);
  return /^FINAL (.*)$/m.exec(out)![1].split(" ").map(Number);
}

/**
 * `unicc run --min-np A -np N --bridge-dir <job>/bridges ... elastic.py train`, calling `onLog` with
 * each line of the launcher's own messages while the job runs.
 */
function elastic(seed: number, np: number, min: number, max: number, kills: string, extra: string[], env: NodeJS.ProcessEnv = {}, onLog = (_: string) => {}) {
  const bridges = join(job.dir, "bridges");
  mkdirSync(bridges, { recursive: true });
  const child = spawn(process.execPath, [CLI, "run", "--min-np", String(min), "--max-np", String(max), "-np", String(np), "--timeout", "5",
    "--bridge-dir", bridges, ...extra, "--", IN_ROOT, "python3", TRAIN, "train", String(seed), job.dir, String(STEPS), "2", kills], {
    env: { ...process.env, ...job.env, ...env }, stdio: ["ignore", "pipe", "pipe"],
  });
  let partial = "";
  child.stderr.on("data", (d) => {
    const parts = (partial + d).split("\n");
    partial = parts.pop()!;
    parts.filter((l) => l.startsWith("unicc: ")).forEach(onLog);
  });
  return { bridges, done: collect([child], { timeoutMs: 150_000 }) };
}

describe("elastic jobs with Caffe through unicc run --bridge", () => {
  it("3 ranks, SGD with momentum: one SIGKILLed mid-training, the other 2 go on from the last commit (weights, momenta, iteration) to the reference's weights; its bridge and its files go at once", async () => {
    const seed = randomInt(1, 1 << 20);
    let atReform: { bridges: string[]; files: string[] } | undefined;
    const { bridges, done } = elastic(seed, 3, 2, 3, "2@5", [], {}, (line) => {
      if (/generation 2: 2 ranks/.test(line)) atReform = { bridges: bridgesIn(bridges), files: readdirSync(bridges) };
    });
    const r = await done;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, host \S+, pid \d+\) was killed by SIGKILL; re-forming the world without it/);
    // Killed at the start of iteration 5, after the commit at 4: iteration 4 is done again at 2 ranks.
    expectReference(r, "0:3,4:2", 2, (s) => reference(seed, s), 1e-5);
    // By the time the survivors re-formed, the victim's bridge was stopped and the slab file it left removed.
    expect(atReform, r.stderr).toBeDefined();
    expect(atReform!.bridges).toHaveLength(2);
    expect(atReform!.files.filter((f) => /-bridge-2(-|$)/.test(f))).toEqual([]);
    expect(bridgesIn(bridges)).toEqual([]);
    expect(readdirSync(bridges)).toEqual([]);
  }, 160_000);

  it("a rank's bridge SIGKILLed mid-training: its rank goes with it, named by its bridge, and the other 2 go on to the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const { bridges, done } = elastic(seed, 3, 2, 3, "2@5b", []);
    const r = await done;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 2 \(rank 2 of generation 1, host \S+, pid \d+\) lost its bridge \(pid \d+\), which was killed by SIGKILL; re-forming the world without it/);
    expectReference(r, "0:3,4:2", 2, (s) => reference(seed, s), 1e-5);
    expect(bridgesIn(bridges)).toEqual([]);
    expect(readdirSync(bridges)).toEqual([]);
  }, 160_000);

  it("a slot added by the discovery script: its rank starts with a bridge of its own, joins at the next commit with the survivors' state, and the job ends at 3 ranks with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const hosts = join(job.dir, "hosts");
    writeFileSync(hosts, "localhost:2\n");
    const script = join(job.dir, "discover.sh");
    writeFileSync(script, `#!/bin/sh\ncat ${hosts}\n`);
    chmodSync(script, 0o755);
    const { bridges, done } = elastic(seed, 2, 2, 3, "", ["--host-discovery-script", script, "--discovery-interval", "0.2"], {
      JOIN_AT: "4", JOIN_HOSTS: hosts, JOIN_LINE: "localhost:3", JOIN_SIZE: "3",
    });
    const r = await done;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/generation 2: 3 ranks \(1 joined\)/);
    expectReference(r, "0:2,4:3", 3, (s) => reference(seed, s), 1e-5);
    expect(bridgesIn(bridges)).toEqual([]);
    expect(readdirSync(bridges)).toEqual([]);
  }, 160_000);
});
