// Slurm as the engine that owns the nodes, for real: slurmctld, one slurmd per emulated machine.
// srun starts ranks that find their place from SLURM_* alone; `unicc run` inside an allocation
// starts its ranks with srun; `unicc run --slurm` asks for the allocation itself and gives it back.
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectCorrect, worker } from "../../packages/core-native/test/collectives-check.js";
import type { JobResult } from "../../packages/core-native/test/run-job.js";
import { netnsUnavailable } from "../cluster/cluster.js";
import { slurmUnavailable, slurmUp, type SlurmCluster } from "./slurm.js";

/** Runs a Slurm client command; with `--label`, srun's "R: line" output is split by rank. */
function slurmRun(argv: string[], env: NodeJS.ProcessEnv, timeoutMs = 100_000): Promise<JobResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(argv[0], argv.slice(1), { env: { ...env, UNICC_TIMEOUT_S: "20" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${argv[0]} did not end within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const byRank = new Map<number, string[]>();
      for (const m of stdout.matchAll(/^\s*(?:\[)?(\d+)(?::|\]) ?(.*)$/gm)) {
        const r = Number(m[1]);
        if (!byRank.has(r)) byRank.set(r, []);
        byRank.get(r)!.push(m[2]);
      }
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, byRank });
    });
  });
}

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
});
