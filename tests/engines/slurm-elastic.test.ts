// Elastic jobs on Slurm (shrink only), for real: slurmctld and one slurmd per emulated machine
// (tests/engines/slurm.ts), torch ranks under unicc.elastic.State (the torch elastic test's
// worker). A rank's job step cancelled, or a node of the allocation set DOWN (what slurmctld does to
// a node that stops answering), leaves the job at the smaller size instead of ending it; the final
// weights equal a reference trained in one process at the same sizes.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { expectReference } from "../../packages/core-native/test/elastic-check.js";
import { CLI, collect, type JobResult } from "../../packages/core-native/test/run-job.js";
import { netnsUnavailable } from "../cluster/cluster.js";
import { rayPython } from "./ray-cluster.js";
import { slurmUnavailable, slurmUp, type SlurmCluster } from "./slurm.js";

const TRAIN = fileURLToPath(new URL("../../packages/adapter-torch-bridge/test/workers/elastic_train.py", import.meta.url));
const CLUSTER_SH = fileURLToPath(new URL("../cluster/cluster.sh", import.meta.url));
const STEPS = 12;

const why = netnsUnavailable() ?? slurmUnavailable();
describe.skipIf(why !== null)(`elastic jobs on Slurm, 2 emulated machines${why ? `: skipped, ${why}` : ""}`, () => {
  let slurm: SlurmCluster;
  // A Python with torch and unicc (the Ray test's venv has both).
  let python: string;
  let seed: number;
  beforeAll(async () => {
    python = rayPython();
    slurm = await slurmUp(2);
  }, 600_000);
  afterAll(async () => {
    await slurm?.down();
  }, 60_000);
  beforeEach(() => {
    seed = randomInt(1, 1 << 20);
  });
  afterEach(() => {
    // A node set DOWN serves the next test again.
    for (const n of slurm.nodes) spawnSync("scontrol", ["update", `NodeName=${n}`, "State=RESUME"], { env: slurm.env });
    expect(slurm.queue(), "Slurm jobs left").toEqual([]);
    const left = slurm.cluster.hosts.flatMap((h) =>
      spawnSync("bash", [CLUSTER_SH, "enter", h.name, "pgrep", "-f", `elastic_train.py train ${seed} `], { encoding: "utf8" }).stdout.split("\n").filter(Boolean));
    expect(left, "ranks left running").toEqual([]);
  }, 60_000);

  function reference(sched: string): number[] {
    const text = execFileSync(python, [TRAIN, "reference", String(seed), String(STEPS), sched], { encoding: "utf8" });
    return /^FINAL (.*)$/m.exec(text)![1].split(" ").map(Number);
  }

  /** `prefix` (salloc ...) then `unicc run <args> -- <the torch worker>`, to completion. */
  function job(prefix: string[], args: string[], kills: string): Promise<JobResult> {
    const argv = [...prefix, process.execPath, CLI, "run", "--rendezvous-addr", slurm.cluster.rootAddr, "--timeout", "20", ...args,
      "--", "env", "OMP_NUM_THREADS=1", python, TRAIN, "train", String(seed), String(STEPS), "2", kills];
    const child = spawn(argv[0], argv.slice(1), { env: slurm.env, stdio: ["ignore", "pipe", "pipe"] });
    return collect([child], { timeoutMs: 300_000 });
  }

  it("unicc run --slurm --min-np 2: a rank's job step cancelled mid-step: the other 3 go on from the last commit; the allocation is released", async () => {
    const r = await job([], ["--slurm", "--nodes", "2", "--ntasks-per-node", "2", "--min-np", "2"], "3@5:scancel");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 3 \(rank 3 of generation 1, host \S+, pid \d+\) (exited with code \d+|was killed by \w+); re-forming the world without it/);
    expect(r.stderr).toMatch(/generation 2: 3 ranks/);
    expect(r.stderr).toMatch(/released Slurm job \d+/);
    // Cancelled in step 5, after the commit at step 4: step 4 is done again at 3 ranks.
    expectReference(r, "0:4,4:3", 3, reference, 1e-12);
  }, 320_000);

  it.each([
    ["unicc run --slurm --min-np 2 (its allocation asked for with --no-kill)", [], ["--slurm", "--nodes", "2", "--ntasks-per-node", "2", "--min-np", "2"]],
    ["inside salloc --no-kill, unicc run --min-np 2", ["salloc", "-N2", "--ntasks-per-node=2", "--no-kill"], ["--min-np", "2"]],
  ])("%s: a node set DOWN mid-step: its 2 ranks end, the other node's 2 go on from the last commit", async (_what, prefix, args) => {
    const r = await job(prefix, args, "2@5:down");
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // srun itself exits 0 on a node failure that reaches it before its task's end: the lost ranks
    // must not pass for finished ones (srun-rank.sh makes that 1; 137 where Slurm's kill came first).
    for (const w of [2, 3])
      expect(r.stderr).toMatch(new RegExp(`worker ${w} \\(rank ${w} of generation 1, host ${slurm.nodes[1]}, pid \\d+\\) exited with code (1|137); re-forming`));
    expect(r.stderr).toMatch(/generation 2: 2 ranks/);
    expectReference(r, "0:4,4:2", 2, reference, 1e-12);
  }, 320_000);

  it("--min-np above the allocation's slots: one clear line, exit 2, the allocation released", async () => {
    const r = await job([], ["--slurm", "--nodes", "1", "--ntasks-per-node", "2", "--min-np", "3"], "");
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--min-np 3 is more than the 2 slots of the allocation/);
    expect(r.stderr).toMatch(/released Slurm job \d+/);
  }, 120_000);
});
