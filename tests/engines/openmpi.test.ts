// Open MPI as the launcher: `mpirun ... node train.mjs` and `mpirun ... python train.py` run unicc
// jobs with no unicc-specific setup on one host, and onto emulated machines (which share one
// hostname, so only the /dev/shm probe can tell them apart) with MASTER_ADDR given.
import { execFileSync, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectCorrect, worker } from "../../packages/core-native/test/collectives-check.js";
import { collect, type JobResult } from "../../packages/core-native/test/run-job.js";
import { venvPython } from "../../packages/adapter-torch-bridge/test/helpers.js";
import { netnsUnavailable, up, type Cluster } from "../cluster/cluster.js";

const CLUSTER_SH = fileURLToPath(new URL("../cluster/cluster.sh", import.meta.url));
const TORCH_WORKERS = fileURLToPath(new URL("../../packages/adapter-torch-bridge/test/workers/", import.meta.url));
const ROOT_OK = { OMPI_ALLOW_RUN_AS_ROOT: "1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1" };

function mpirunMissing(): string | null {
  try {
    execFileSync("mpirun", ["--version"], { stdio: "ignore" });
    return null;
  } catch {
    return "mpirun not found (Debian: apt-get install openmpi-bin)";
  }
}

/** Runs mpirun; each rank's stdout comes from its --output-filename file (whole lines, unlike --tag-output's chunks). */
function mpirun(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 100_000): Promise<JobResult> {
  // Not the temporary folder: each emulated machine has its own, and remote ranks write their files there.
  const out = mkdtempSync("/var/tmp/unicc-mpirun-");
  const child = spawn("mpirun", ["--oversubscribe", "--output-filename", out, ...args], {
    env: { ...process.env, ...ROOT_OK, UNICC_TIMEOUT_S: "20", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const fromFiles = () => {
    const byRank = new Map<number, string[]>();
    for (const dir of existsSync(`${out}/1`) ? readdirSync(`${out}/1`) : []) {
      const m = /^rank\.(\d+)$/.exec(dir);
      const file = `${out}/1/${dir}/stdout`;
      if (m && existsSync(file)) byRank.set(Number(m[1]), readFileSync(file, "utf8").split("\n").filter(Boolean));
    }
    return byRank;
  };
  return collect([child], { timeoutMs, byRank: fromFiles }).finally(() => rmSync(out, { recursive: true, force: true }));
}

const missing = mpirunMissing();
describe.skipIf(missing !== null)(`under mpirun${missing ? `: skipped, ${missing}` : ""}`, () => {
  it("mpirun -np 4 node ...: ranks from OMPI_COMM_WORLD_*, the store on loopback, every collective exact", async () => {
    const r = await mpirun(["-np", "4", ...worker]);
    expectCorrect(r, 4, "shm");
  });

  it("mpirun -np 4 python ...: the torch adapter's collectives through the bridge", async () => {
    const python = venvPython();
    const r = await mpirun(["-np", "4", "-x", "OMP_NUM_THREADS=1", python, `${TORCH_WORKERS}collectives.py`, String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 4; rank++) expect(r.byRank.get(rank)?.join("\n")).toMatch(new RegExp(`OK \\d+ checks rank ${rank} of 4`));
  }, 300_000);

  const noNetns = netnsUnavailable();
  describe.skipIf(noNetns !== null)("onto 2 emulated machines x 2 ranks, both named 'node'", () => {
    let cluster: Cluster;
    beforeAll(async () => {
      cluster = await up({ hosts: 2, sameHostname: "node" });
    });
    afterAll(async () => {
      await cluster?.down();
    });
    const onCluster = () => [
      "-np", "4", "--host", cluster.hosts.map((h) => `${h.name}:2`).join(","),
      "--mca", "plm_rsh_agent", `bash ${CLUSTER_SH} rsh`,
      "--mca", "oob_tcp_if_include", `${cluster.rootAddr.replace(/\.\d+$/, ".0")}/24`,
      "-x", "PATH", "-x", "UNICC_TIMEOUT_S",
    ];

    it("with -x MASTER_ADDR=<first host>: hierarchical (two hosts found), exact", async () => {
      const r = await mpirun([...onCluster(), "-x", `MASTER_ADDR=${cluster.hosts[0].addr}`, ...worker]);
      expectCorrect(r, 4, "hierarchical");
    });

    it("without MASTER_ADDR: every rank says to set it, and the job ends", async () => {
      const r = await mpirun([...onCluster(), ...worker], {}, 60_000);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/started by mpirun across several hosts, and nothing says where rank 0 is: set MASTER_ADDR/);
    });
  });
});
