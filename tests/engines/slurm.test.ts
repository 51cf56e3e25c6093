// Slurm as the engine that owns the nodes, for real: slurmctld, one slurmd per emulated machine.
// srun starts ranks that find their place from SLURM_* alone; `unicc run` inside an allocation
// starts its ranks with srun; `unicc run --slurm` asks for the allocation itself and gives it back.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectCorrect, worker } from "../../packages/core-native/test/collectives-check.js";
import { CLI, collect, lines, WORKERS, type JobResult } from "../../packages/core-native/test/run-job.js";
import { netnsUnavailable } from "../cluster/cluster.js";
import { slurmUnavailable, slurmUp, type SlurmCluster } from "./slurm.js";

/** Runs a Slurm client command; srun's --label lines ("R: text") and the launcher's ("[R] text") are split by rank. */
function slurmRun(argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 100_000): Promise<JobResult> {
  const child = spawn(argv[0], argv.slice(1), { env: { ...env, UNICC_TIMEOUT_S: "20" }, stdio: ["ignore", "pipe", "pipe"] });
  const labelled = ([stdout]: string[]) => {
    const byRank = new Map<number, string[]>();
    for (const m of stdout.matchAll(/^\s*(?:\[(\d+)\] |(\d+): )(.*)$/gm)) {
      const r = Number(m[1] ?? m[2]);
      byRank.set(r, [...(byRank.get(r) ?? []), m[3]]);
    }
    return byRank;
  };
  return collect([child], { timeoutMs, byRank: labelled });
}

const CLUSTER_SH = fileURLToPath(new URL("../cluster/cluster.sh", import.meta.url));

const why = netnsUnavailable() ?? slurmUnavailable();
describe.skipIf(why !== null)(`Slurm on 2 emulated machines${why ? `: skipped, ${why}` : ""}`, () => {
  let slurm: SlurmCluster;
  beforeAll(async () => {
    slurm = await slurmUp(2);
  }, 60_000);
  afterAll(async () => {
    await slurm?.down();
  });

  it("srun -N2 -n4 node ...: ranks from SLURM_PROCID/SLURM_STEP_NUM_TASKS, rank 0's store on the step's first node; exact", async () => {
    const r = await slurmRun(["srun", "--label", "-N2", "-n4", "--ntasks-per-node=2", ...worker], slurm.env);
    expectCorrect(r, 4, "hierarchical");
    expect(slurm.queue()).toEqual([]);
  });

  // What is left of a job on the machines: its ranks' processes.
  const ranksLeft = () => slurm.cluster.hosts.flatMap((_h, i) =>
    spawnSync("bash", [CLUSTER_SH, "enter", slurm.cluster.hosts[i].name, "pgrep", "-f", "workers/(collectives|faults).mjs"], { encoding: "utf8" })
      .stdout.split("\n").filter(Boolean));
  const unicc = (args: string[]) => [process.execPath, CLI, "run", "--rendezvous-addr", slurm.cluster.rootAddr, ...args];

  it("unicc run inside salloc: ranks start on the allocation's nodes with srun (rank-prefixed output); exact", async () => {
    const r = await slurmRun(["salloc", "-N2", "--ntasks-per-node=2", ...unicc(worker)], slurm.env);
    expectCorrect(r, 4, "hierarchical");
    expect(slurm.queue()).toEqual([]);
    expect(ranksLeft()).toEqual([]);
  });

  it("unicc run --slurm --nodes 2 --ntasks-per-node 2: asks for the allocation, runs, releases it; -np 3 takes the first 3 slots", async () => {
    const r = await slurmRun(unicc(["--slurm", "--nodes", "2", "--ntasks-per-node", "2", ...worker]), slurm.env);
    expectCorrect(r, 4, "hierarchical");
    expect(r.stderr).toMatch(/asking Slurm for 2 node\(s\) x 2 task\(s\)[\s\S]*released Slurm job \d+/);
    expect(slurm.queue()).toEqual([]);
    const three = await slurmRun(unicc(["--slurm", "--nodes", "2", "--ntasks-per-node", "2", "-np", "3", ...worker]), slurm.env);
    expectCorrect(three, 3, "ring");
    expect(slurm.queue()).toEqual([]);
  });

  it("unicc run --slurm with a rank killed mid-job: the job ends naming it, the allocation is released, no rank is left", async () => {
    const r = await slurmRun(unicc(["--slurm", "--nodes", "2", "--ntasks-per-node", "2", "--grace", "1", "--timeout", "10",
      "node", `${WORKERS}faults.mjs`, "die", "3", "5"]), slurm.env);
    expect(r.code).not.toBe(0);
    // Which end the launcher hears of first is a race under Slurm: rank 3's kill reaches srun
    // through slurmstepd, and a survivor that saw the death (within about 50 ms) may exit with its
    // code 3 before that. Either way the job ends at once, and such a survivor names rank 3.
    const first = /unicc: rank (\d) \(host [^,]+, pid \d+\) (was killed by SIGKILL|exited with code 137|exited with code 3) first/.exec(r.stderr);
    expect(first, r.stderr).not.toBeNull();
    if (first![1] !== "3") {
      expect(first![2]).toBe("exited with code 3");
      expect(lines(r, Number(first![1]))).toMatch(/ERROR \d+ .*rank 3 \(host [^,]+, pid \d+\)/);
    } else {
      expect(first![2]).not.toBe("exited with code 3");
    }
    expect(r.stderr).toMatch(/released Slurm job \d+/);
    expect(slurm.queue()).toEqual([]);
    expect(ranksLeft()).toEqual([]);
  });

  it("--slurm without its sizes, or with -H: one clear line, exit 2", async () => {
    const r = await slurmRun(unicc(["--slurm", "--nodes", "2", "node", "-e", "0"]), slurm.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--slurm needs --nodes N and --ntasks-per-node M/);
    const h = await slurmRun(unicc(["--slurm", "--nodes", "1", "--ntasks-per-node", "1", "-H", "a:1", "node", "-e", "0"]), slurm.env);
    expect(h.stderr).toMatch(/--slurm takes its hosts from the allocation/);
  });
});
