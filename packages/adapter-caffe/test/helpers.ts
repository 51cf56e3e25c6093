import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, beforeEach, expect } from "vitest";

import type { Cluster } from "../../../tests/cluster/cluster.js";
import { CLI, collect, type JobResult } from "../../core-native/test/run-job.js";

export { lines, runJob, type JobResult } from "../../core-native/test/run-job.js";

export const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));
export const IN_ROOT = fileURLToPath(new URL("../scripts/in-root.sh", import.meta.url));
export const IN_CONTAINER = fileURLToPath(new URL("../scripts/in-container.sh", import.meta.url));
export const UNICC_CAFFE = fileURLToPath(new URL("../bin/unicc-caffe", import.meta.url));
const MAKE_ROOT = fileURLToPath(new URL("../scripts/make-bullseye-root.sh", import.meta.url));

/** The bullseye root with Caffe (made once by scripts/make-bullseye-root.sh; about a minute the first time). */
export function bullseyeRoot(): string {
  return execFileSync("bash", [MAKE_ROOT], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
}

/** A folder for one test's files, bound into the root at the same path (UNICC_ROOT_BINDS). */
export function jobFolder(): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), "unicc-caffe-test-"));
  return { dir, env: { UNICC_ROOT_BINDS: dir, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" } };
}

/**
 * Gives each test of the file a fresh job folder (the object returned, updated before each test) and
 * checks after it that nothing of its job is left: every rank's mounts go with its mount namespace,
 * and the launcher removes its bridges' files.
 */
export function caffeJobs(): { dir: string; env: NodeJS.ProcessEnv } {
  const job = { dir: "", env: {} as NodeJS.ProcessEnv };
  let root = "";
  let before = new Set<string>();
  beforeAll(() => {
    root = bullseyeRoot();
  }, 600_000);
  beforeEach(() => {
    Object.assign(job, jobFolder());
    before = new Set(leftovers(root));
  });
  afterEach(() => {
    expect(leftovers(root).filter((f) => !before.has(f))).toEqual([]);
    rmSync(job.dir, { recursive: true, force: true });
  });
  return job;
}

const CLIENT = fileURLToPath(new URL("../../core-native/python/unicc/", import.meta.url));
const ADAPTER = fileURLToPath(new URL("../python/unicc/caffe", import.meta.url));

/**
 * in-container.sh volumes that put the unicc client and unicc.caffe into `site` read-only, file by
 * file as pip installs the two packages into one unicc/ folder.
 */
export function pipInstalled(site: string): string[] {
  const client = readdirSync(CLIENT).filter((f) => f.endsWith(".py"));
  return [...client.map((f) => `${CLIENT}${f}:${site}/unicc/${f}:ro`), `${ADAPTER}:${site}/unicc/caffe:ro`];
}

/** Runs a command in the root as one process (no job), e.g. to write an LMDB. */
export function inRoot(env: NodeJS.ProcessEnv, cmd: string[]): string {
  return execFileSync(IN_ROOT, cmd, { encoding: "utf8", env: { ...process.env, ...env }, cwd: WORKERS });
}

/** Mounts below the root, and what the bridge may leave in /dev/shm: both must stay empty. */
export function leftovers(root: string): string[] {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" ")[4]).filter((m) => m?.startsWith(root));
  const shm = readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-") && f.includes("-bridge-")).map((f) => `/dev/shm/${f}`);
  return [...mounts, ...shm];
}

/**
 * One launcher per emulated host (`unicc run --nnodes H --node-rank K -np slots --bridge`, torchrun's
 * shape, one shared token), each starting its ranks in the root there; with the bytes each host
 * sent on its link meanwhile.
 */
export async function perNodeJob(c: Cluster, slots: number, args: string[], env: NodeJS.ProcessEnv): Promise<JobResult & { sent: number[] }> {
  const port = String(20000 + randomInt(20000));
  const token = randomBytes(32).toString("hex");
  const before = await Promise.all(c.hosts.map((_, k) => sentBytes(c, k)));
  const r = await collect(c.hosts.map((_, k) =>
    c.exec(k, [process.execPath, CLI, "run", "--nnodes", String(c.hosts.length), "--node-rank", String(k), "-np", String(slots),
      "--master-addr", c.hosts[0].addr, "--master-port", port, "--bridge", ...args], {
      env: { ...process.env, ...env, UNICC_JOB_TOKEN: token }, stdio: ["ignore", "pipe", "pipe"],
    })));
  const after = await Promise.all(c.hosts.map((_, k) => sentBytes(c, k)));
  return { ...r, sent: after.map((a, k) => a - before[k]) };
}

/** Bytes host k has sent on its link (eth0's counter, read in its network namespace). */
async function sentBytes(c: Cluster, k: number): Promise<number> {
  const r = await collect([c.exec(k, ["cat", "/proc/net/dev"], { stdio: ["ignore", "pipe", "pipe"] })], { timeoutMs: 10_000 });
  const line = r.stdout.split("\n").find((l) => l.trim().startsWith("eth0:"));
  if (!line) throw new Error(`no eth0 on host ${k}: ${r.stdout}`);
  return Number(line.split(":")[1].trim().split(/\s+/)[8]);
}
