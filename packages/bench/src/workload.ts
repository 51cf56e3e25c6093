// What `unicc-bench engine` exchanges: a workload (tensor names and sizes, packages/bench/workloads/*.json),
// a backward trace of when each becomes ready, and what the runner tells each unicc rank to do.
import { readFileSync } from "node:fs";

import type { Compression } from "@unicc/core";

export interface EngineWorkerConfig {
  workload: string;
  mode: "exchange" | "replay";
  compression: Compression;
  warmup: number;
  steps: number;
  /** replay: the backward trace (workloads/resnet50-backward.json) and its scaled length. */
  trace?: string;
  computeS?: number;
}

export interface WorkloadTensor {
  name: string;
  shape: number[];
  numel: number;
}

export function loadWorkload(path: string): WorkloadTensor[] {
  const w = JSON.parse(readFileSync(path, "utf8")) as { tensors?: WorkloadTensor[] };
  if (!Array.isArray(w.tensors) || !w.tensors.length || w.tensors.some((t) => !(typeof t.name === "string" && Number.isInteger(t.numel) && t.numel > 0)))
    throw new Error(`${path} is not a workload: expected {"tensors": [{"name", "shape", "numel"}, ...]}`);
  return w.tensors;
}

/** Gradient ready times of a backward trace, in ready order. */
export function loadTrace(path: string): { name: string; ready_s: number }[] {
  const t = JSON.parse(readFileSync(path, "utf8")) as { tensors?: { name: string; ready_s: number }[] };
  if (!Array.isArray(t.tensors) || !t.tensors.length || t.tensors.some((x) => !(typeof x.name === "string" && x.ready_s >= 0)))
    throw new Error(`${path} is not a backward trace: expected {"tensors": [{"name", "ready_s"}, ...]}`);
  return t.tensors;
}
