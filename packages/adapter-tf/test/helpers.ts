import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { expect, type TestContext } from "vitest";

import { runJob, type JobResult } from "../../core-native/test/run-job.js";
import { TFJS_NODE } from "./workers/tfjs-node.mjs";

const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));

/** Generous: 4 ranks importing tfjs on a loaded 2-core machine take a while to start. */
export const JOB_TIMEOUT_MS = 150_000;

/**
 * The backends the adapter's tests run on: tfjs's own cpu and wasm, and TensorFlow's C library
 * through tfjs-node (tensorflow) and tfjs-node-gpu (tensorflow-gpu: on the GPU where there is one).
 */
export const BACKENDS = ["cpu", "wasm", "tensorflow", "tensorflow-gpu"];

/**
 * TensorFlow's own thread pools at one thread per rank (several ranks share 2 cores in tests), and
 * full float32 matmuls on GPUs that would otherwise round them to TF32.
 */
export const TEST_ENV = { TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "1", OMP_NUM_THREADS: "1", NVIDIA_TF32_OVERRIDE: "0" };

/** The "BACKEND ..." line a worker prints on `backend` (see workers/common.mjs). */
export function backendLine(backend: string) {
  const pkg = TFJS_NODE[backend as keyof typeof TFJS_NODE];
  return pkg ? `BACKEND tensorflow (${pkg})` : `BACKEND ${backend}`;
}

/**
 * Skips the test when `backend` is a tfjs-node package whose addon has not been built (its install
 * script, which would download it, does not run; CI builds tfjs-node's). Only then: a built addon
 * that fails to load fails the test.
 */
export function skipWithoutBackend(ctx: TestContext, backend: string) {
  const name = TFJS_NODE[backend as keyof typeof TFJS_NODE];
  if (!name) return;
  const pkg = createRequire(import.meta.url).resolve(`${name}/package.json`);
  const addon = createRequire(pkg)("@mapbox/node-pre-gyp").find(pkg) as string;
  const build = `packages/adapter-tf/scripts/build-tfjs-node.sh${backend === "tensorflow-gpu" ? " gpu" : ""}`;
  ctx.skip(!existsSync(addon), `${name}'s addon ${addon} is not built: run ${build}`);
}

/**
 * Runs `unicc run -np <np> node <worker> <args>`, expecting success unless told otherwise. With
 * `hosts` ("a:2,b:2") the ranks get distinct host identities instead, so they talk TCP across them.
 */
export async function runWorker(
  np: number,
  worker: string,
  args: string[] = [],
  expectCode: number | null = 0,
  hosts?: string,
): Promise<JobResult> {
  const placement = hosts ? ["-H", hosts, "--launch-agent", "env"] : ["-np", String(np)];
  const job = await runJob([...placement, "--", "node", `${WORKERS}${worker}`, ...args], { env: TEST_ENV, timeoutMs: JOB_TIMEOUT_MS });
  if (expectCode !== null && job.code !== expectCode) {
    throw new Error(`${worker} on ${np} ranks exited ${job.code} (${job.signal ?? "no signal"})\n${job.stdout}\n${job.stderr}`);
  }
  return job;
}

/** The JSON payloads of "<TAG> <json>" lines, by rank. */
export function tagged<T = unknown>(job: JobResult, tag: string): Map<number, T[]> {
  const out = new Map<number, T[]>();
  for (const [rank, lines] of job.byRank) {
    const hits = lines.filter((l) => l.startsWith(`${tag} `)).map((l) => JSON.parse(l.slice(tag.length + 1)) as T);
    if (hits.length) out.set(rank, hits);
  }
  return out;
}

/** Every rank's payloads for `tag`, in rank order; fails unless all `np` ranks printed it. */
export function perRank<T = unknown>(job: JobResult, tag: string, np: number): T[][] {
  const m = tagged<T>(job, tag);
  expect([...m.keys()].sort((a, b) => a - b), `ranks that printed ${tag}`).toEqual([...Array(np).keys()]);
  return [...Array(np).keys()].map((r) => m.get(r)!);
}

export const maxAbs = (a: number[]) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
export const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
