import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { DEFAULT_TIMEOUT_S, readEnv } from "../src/ts/env.js";
import { firstSlurmNode, jobPort } from "../src/ts/launcher-env.js";
import { runJob, WORKERS } from "./run-job.js";

describe("readEnv", () => {
  it("UNICC_NETWORK_INTERFACE: the rank listens on, and is reached at, that interface's address", () => {
    const base = { UNICC_RANK: "0", UNICC_SIZE: "2", UNICC_STORE_ADDR: "127.0.0.1:1" };
    expect(readEnv({ ...base, UNICC_NETWORK_INTERFACE: "lo" }).hostAddr).toBe("127.0.0.1");
    expect(readEnv({ ...base, UNICC_NETWORK_INTERFACE: "lo", UNICC_HOST_ADDR: "10.9.9.9" }).hostAddr).toBe("10.9.9.9");
    expect(() => readEnv({ ...base, UNICC_NETWORK_INTERFACE: "nosuch0" })).toThrow(
      /UNICC_NETWORK_INTERFACE nosuch0: this host has no such interface \(it has lo/,
    );
  });

  it("prefers the launcher's variables", () => {
    const e = readEnv({ UNICC_RANK: "2", UNICC_SIZE: "4", UNICC_STORE_ADDR: "10.1.2.3:99", RANK: "0", WORLD_SIZE: "1", UNICC_HOST_ID: "h7" });
    expect(e).toMatchObject({ rank: 2, size: 4, storeAddr: "10.1.2.3:99", hostsStore: false, hostId: "h7", timeoutMs: DEFAULT_TIMEOUT_S * 1000 });
  });

  it("falls back to torchrun's variables; rank 0 then hosts the store at MASTER_ADDR:MASTER_PORT", () => {
    const env = { RANK: "0", WORLD_SIZE: "2", MASTER_ADDR: "127.0.0.1", MASTER_PORT: "29500" };
    expect(readEnv(env)).toMatchObject({ rank: 0, size: 2, storeAddr: "127.0.0.1:29500", hostsStore: true });
    expect(readEnv({ ...env, RANK: "1" })).toMatchObject({ rank: 1, hostsStore: false });
  });

  it("reads Open MPI's variables: on one host rank 0's store is on loopback, at a port derived from the job", () => {
    const ompi = (rank: number, local = 4) => ({
      OMPI_COMM_WORLD_RANK: String(rank), OMPI_COMM_WORLD_SIZE: "4", OMPI_COMM_WORLD_LOCAL_SIZE: String(local), PMIX_NAMESPACE: "prterun-vm-123@1",
    });
    const r0 = readEnv(ompi(0)), r3 = readEnv(ompi(3));
    expect(r0).toMatchObject({ rank: 0, size: 4, hostsStore: true, source: "Open MPI" });
    expect(r3).toMatchObject({ rank: 3, hostsStore: false, storeAddr: r0.storeAddr });
    expect(r0.storeAddr).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(readEnv({ ...ompi(0), PMIX_NAMESPACE: "prterun-vm-124@1" }).storeAddr).not.toBe(r0.storeAddr);
    expect(readEnv({ ...ompi(1, 2), MASTER_ADDR: "10.0.0.1", MASTER_PORT: "29400" }).storeAddr).toBe("10.0.0.1:29400");
    expect(() => readEnv(ompi(1, 2))).toThrow(/started by mpirun across several hosts.*set MASTER_ADDR/);
    // Nested in a Slurm allocation, Open MPI's rank wins over its daemon's SLURM_PROCID.
    expect(readEnv({ ...ompi(2), SLURM_PROCID: "0", SLURM_NTASKS: "1", SLURM_STEP_NUM_TASKS: "1" })).toMatchObject({ rank: 2, size: 4 });
    // torchrun inside anything is closest to the process.
    expect(readEnv({ ...ompi(2), RANK: "5", WORLD_SIZE: "8", MASTER_ADDR: "h", MASTER_PORT: "1" })).toMatchObject({ rank: 5, size: 8 });
  });

  it("reads a Slurm step's variables: rank 0 is on the step's first node; a batch script alone is no step", () => {
    const step = { SLURM_PROCID: "3", SLURM_STEP_NUM_TASKS: "4", SLURM_NTASKS: "4", SLURM_STEP_NODELIST: "node[07-08]", SLURM_JOB_ID: "42", SLURM_STEP_ID: "0" };
    const e = readEnv(step);
    expect(e).toMatchObject({ rank: 3, size: 4, hostsStore: false, source: "Slurm" });
    expect(e.storeAddr).toMatch(/^node07:\d+$/);
    expect(readEnv({ ...step, SLURM_PROCID: "0" })).toMatchObject({ hostsStore: true, storeAddr: e.storeAddr });
    expect(readEnv({ ...step, SLURM_STEP_ID: "1" }).storeAddr).not.toBe(e.storeAddr);
    expect(readEnv({ ...step, UNICC_STORE_PORT: "31000" }).storeAddr).toBe("node07:31000");
    // sbatch's script has SLURM_PROCID=0 and SLURM_NTASKS, but it is one process, not a task of a step.
    expect(readEnv({ SLURM_PROCID: "0", SLURM_NTASKS: "4", SLURM_JOB_NODELIST: "n1" })).toMatchObject({ rank: 0, size: 1 });
    expect(() => readEnv({ ...step, SLURM_PROCID: "4" })).toThrow(/SLURM_PROCID=4 must be below SLURM_STEP_NUM_TASKS=4/);
  });

  it("reads the first node of Slurm's compressed node lists", () => {
    expect(firstSlurmNode("h[1-2]")).toBe("h1");
    expect(firstSlurmNode("gpu[007-009,012],cpu1")).toBe("gpu007");
    expect(firstSlurmNode("a1,b[2-3]")).toBe("a1");
    expect(firstSlurmNode("single")).toBe("single");
  });

  it("derives the store's port from the job's identity, below the ephemeral range", () => {
    const keys = Array.from({ length: 2000 }, (_, k) => `slurm:${k * 7919}`);
    const ports = keys.map(jobPort);
    for (const p of ports) expect(p >= 20000 && p < 32000).toBe(true);
    expect(keys.map(jobPort)).toEqual(ports);
    expect(new Set(ports).size).toBeGreaterThan(1500); // spread, so two jobs on a host rarely meet
  });

  it("reads MPICH's PMI variables", () => {
    expect(readEnv({ PMI_RANK: "1", PMI_SIZE: "2", MASTER_ADDR: "10.1.1.1", MASTER_PORT: "5000" })).toMatchObject({
      rank: 1, size: 2, storeAddr: "10.1.1.1:5000", hostsStore: false, source: "PMI",
    });
    expect(() => readEnv({ PMI_RANK: "1", PMI_SIZE: "2" })).toThrow(/set MASTER_ADDR/);
  });

  it("makes a world of one when nothing is set", () => {
    expect(readEnv({})).toMatchObject({ rank: 0, size: 1 });
  });

  it("reads the host split: measured and balanced by default, even, or pinned weights", () => {
    expect(readEnv({}).engine).toMatchObject({ balanceRings: true, hostShares: [] });
    expect(readEnv({ UNICC_HOST_SHARES: "even" }).engine).toMatchObject({ balanceRings: false, hostShares: [] });
    expect(readEnv({ UNICC_HOST_SHARES: "3,1" }).engine).toMatchObject({ balanceRings: false, hostShares: [3, 1] });
  });

  it("refuses incomplete or inconsistent settings, saying which", () => {
    expect(() => readEnv({ RANK: "1" })).toThrow(/RANK and WORLD_SIZE must both be set/);
    expect(() => readEnv({ OMPI_COMM_WORLD_RANK: "1" })).toThrow(/OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_SIZE must both be set/);
    expect(() => readEnv({ SLURM_PROCID: "x", SLURM_STEP_NUM_TASKS: "2", SLURM_STEP_NODELIST: "n1" })).toThrow(/SLURM_PROCID=x is not an integer/);
    expect(() => readEnv({ PMI_SIZE: "2" })).toThrow(/PMI_RANK and PMI_SIZE must both be set/);
    expect(() => readEnv({ UNICC_RENDEZVOUS: "etcd://host-without-port/x" })).toThrow(/UNICC_RENDEZVOUS=etcd:\/\/host-without-port\/x is not etcd:\/\/HOST:PORT\/PREFIX/);
    expect(() => readEnv({ RANK: "0", WORLD_SIZE: "2" })).toThrow(/MASTER_ADDR or MASTER_PORT is missing/);
    expect(() => readEnv({ UNICC_RANK: "4", UNICC_SIZE: "4", UNICC_STORE_ADDR: "x:1" })).toThrow(/UNICC_RANK=4 must be below UNICC_SIZE=4/);
    expect(() => readEnv({ UNICC_TIMEOUT_S: "soon" })).toThrow(/UNICC_TIMEOUT_S=soon is not an integer/);
    expect(() => readEnv({ UNICC_HIERARCHICAL: "maybe" })).toThrow(/UNICC_HIERARCHICAL=maybe must be 1 or 0/);
    for (const bad of ["3,-1", "3", "x,1", "1,,1"])
      expect(() => readEnv({ UNICC_HOST_SHARES: bad })).toThrow(`UNICC_HOST_SHARES=${bad} must be auto, even, or positive weights`);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe("init without the launcher", () => {
  it("works from torchrun's variables alone (rank 0 hosts the store)", async () => {
    const port = await freePort();
    const n = 3;
    const runs = Array.from({ length: n }, (_, rank) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const env: NodeJS.ProcessEnv = { ...process.env, RANK: String(rank), WORLD_SIZE: String(n), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(n), MASTER_ADDR: "127.0.0.1", MASTER_PORT: String(port) };
        for (const k of Object.keys(env)) if (k.startsWith("UNICC_")) delete env[k];
        const child = spawn(process.execPath, [`${WORKERS}collectives.mjs`, "7,1000"], { env, stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.on("close", (code) => resolve({ code, out }));
      }),
    );
    const results = await Promise.all(runs);
    results.forEach((r, rank) => {
      expect(r.code).toBe(0);
      expect(r.out).toContain(`DONE rank ${rank} of ${n} via shm`);
      expect(r.out).not.toMatch(/FAIL/);
    });
  });
});

describe("a rendezvous backend of one's own", () => {
  it("init({ store }) uses it instead of the embedded store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "unicc-file-store-"));
    const n = 3;
    const outs = await Promise.all(
      Array.from({ length: n }, (_, rank) =>
        new Promise<string>((resolve) => {
          const env = { ...process.env, UNICC_RANK: String(rank), UNICC_SIZE: String(n), UNICC_STORE_ADDR: "nowhere:1", UNICC_JOB_ID: `fs${process.pid}` };
          const child = spawn(process.execPath, [`${WORKERS}file-store.mjs`, dir], { env, stdio: ["ignore", "pipe", "inherit"] });
          let out = "";
          child.stdout.on("data", (d) => (out += d));
          child.on("close", () => resolve(out));
        }),
      ),
    );
    // sum over ranks of (r+1) and 2(r+1)
    outs.forEach((o) => expect(o).toContain(`SUM ${(n * (n + 1)) / 2} ${n * (n + 1)}`));
  });
});

describe("the world API refuses misuse locally and keeps working", () => {
  it("2 ranks", async () => {
    const r = await runJob(["-np", "2", "node", `${WORKERS}misuse.mjs`]);
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1]) {
      const out = r.byRank.get(rank)!.join("\n");
      expect(out).toMatch(/MISUSE in-flight UniccError: .*a pending allreduce is still using; await that collective/);
      expect(out).toMatch(/MISUSE in-flight-sync UniccError: .*a pending allreduce is still using; await that collective/);
      expect(out).toMatch(/MISUSE free-sync accepted/);
      expect(out).toMatch(/MISUSE root RangeError: unicc: root 2 is not a rank of this world \(0\.\.1\)/);
      expect(out).toMatch(/MISUSE allgather-output RangeError: allgather output must hold size x input length = 8 elements, got 5/);
      expect(out).toMatch(/MISUSE op TypeError: unicc: unknown reduce op 'median'/);
      expect(out).toMatch(/MISUSE dtype TypeError: the buffer must be a Float32Array, Float64Array, Int32Array or BigInt64Array/);
      expect(out).toMatch(/MISUSE mixed-allgather TypeError: allgather output must have the same element type/);
      expect(out).toContain("STILL OK true true");
      expect(out).toMatch(/MISUSE after-close UniccError: unicc: barrier on rank \d after close\(\)/);
    }
  });
});
