// One rank of unicc's side of `unicc-bench engine`, started by the launcher on the emulated hosts.
// argv: one JSON EngineWorkerConfig. Per step: restore the random gradients, barrier, t0, hand
// every tensor to the engine by name, await them all, t1.
//   exchange: all tensors at once, in reverse workload order (the order backward makes them).
//   replay:   each tensor when its layer's backward finishes in a recorded trace, scaled so that
//             backward takes computeS; ranks sleep through the compute in between. The same
//             schedule without any communication gives the compute-only step time.
// The first step's result is checked on every rank against a reference computed from every
// rank's seed, so a broken path fails the bench instead of timing garbage. Rank 0 prints one
// JSON line {"result": ...} on stdout and a progress line per step on stderr.
import { setTimeout as sleep } from "node:timers/promises";

import { init, type AllreduceOptions, type Compression, type World } from "@unicc/core";
import { median } from "./plan.js";
import { loadTrace, loadWorkload, type EngineWorkerConfig, type WorkloadTensor } from "./workload.js";

/** Element i of rank r's input: a hash of (r, i) mapped to [-1, 1), the same on every rank. */
function seeded(rank: number, i: number): number {
  let h = Math.imul(i ^ Math.imul(rank + 1, 0x9e3779b9), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 31 - 1;
}

/**
 * Largest error allowed against the float64 sum of |inputs| < 1: a few fp32 roundings per rank
 * exactly, or one 16-bit rounding of each partial sum per hop when compressed (fp16 keeps 11
 * significant bits, bf16 8), with a factor of 2 for the engine's scaling.
 */
function tolerance(compression: Compression, ranks: number): number {
  const bits = { none: 24, fp16: 11, bf16: 8 }[compression];
  return compression === "none" ? ranks * 2 ** -22 : 2 * ranks * ranks * 2 ** -bits;
}

function check(world: World, tensors: WorkloadTensor[], offsets: number[], buf: Float32Array, compression: Compression): void {
  const tol = tolerance(compression, world.size);
  for (let t = 0; t < tensors.length; t++) {
    for (let j = 0, i = offsets[t]; j < tensors[t].numel; j++, i++) {
      let ref = 0;
      for (let r = 0; r < world.size; r++) ref += Math.fround(seeded(r, i));
      if (!(Math.abs(buf[i] - ref) <= tol))
        throw new Error(
          `rank ${world.rank}: ${tensors[t].name}[${j}] is ${buf[i]} after the allreduce (compression ${compression}), ` +
            `expected ${ref} within ${tol}: the result is wrong, so its timing would mean nothing`,
        );
    }
  }
}

/** Extra warm-up steps allowed for the engine's tuner to settle. */
const MAX_TUNING_STEPS = 30;

const cfg = JSON.parse(process.argv[2] ?? "") as EngineWorkerConfig;
const tensors = loadWorkload(cfg.workload);
const world = await init();
const lead = world.rank === 0;

const offsets: number[] = [];
let total = 0;
for (const t of tensors) {
  offsets.push(total);
  total += t.numel;
}
const input = new Float32Array(total);
for (let i = 0; i < total; i++) input[i] = seeded(world.rank, i);
const buf = new Float32Array(total);
const views = tensors.map((t, k) => buf.subarray(offsets[k], offsets[k] + t.numel));
// Named: each goes to the engine, which negotiates, fuses and (optionally) sends it in 16 bits.
const requests: AllreduceOptions[] = tensors.map((t) => ({ name: t.name, compression: cfg.compression }));

/** When (seconds after the step starts) each tensor is handed over, in order. */
let schedule: { index: number; at: number }[];
if (cfg.mode === "exchange") {
  schedule = tensors.map((_, k) => ({ index: tensors.length - 1 - k, at: 0 }));
} else {
  const trace = loadTrace(cfg.trace ?? "");
  const byName = new Map(tensors.map((t, k) => [t.name, k]));
  const last = trace.at(-1)!.ready_s;
  if (trace.length !== tensors.length || trace.some((x) => !byName.has(x.name)))
    throw new Error(`the trace ${cfg.trace} does not name exactly the tensors of ${cfg.workload}`);
  schedule = trace.map((x) => ({ index: byName.get(x.name)!, at: (x.ready_s / last) * cfg.computeS! }));
}

async function step(communicate: boolean): Promise<number> {
  buf.set(input);
  await world.barrier();
  const t0 = performance.now();
  const pending: Promise<unknown>[] = [];
  for (const { index, at } of schedule) {
    // Timers may fire a fraction of a millisecond early: sleep again until the layer is done.
    for (let wait = t0 + at * 1000 - performance.now(); wait > 0; wait = t0 + at * 1000 - performance.now()) await sleep(wait);
    if (communicate) pending.push(world.allreduce(views[index], requests[index]));
  }
  await Promise.all(pending);
  return (performance.now() - t0) / 1000;
}

/** Whether the engine's tuner is still trying settings on any rank (all ranks must agree to stop warming up). */
async function tuning(): Promise<boolean> {
  const flag = new Int32Array([world.engineTuning ? 1 : 0]);
  await world.allreduce(flag, { op: "max" });
  return flag[0] === 1;
}

const progress = (what: string, t: number, note = "") =>
  lead && process.stderr.write(`progress unicc ${cfg.mode} ${cfg.compression} ${what}: ${t.toFixed(3)} s${note}\n`);
// Warm up for the steps asked, and beyond them while the tuner is still measuring (bounded), so the
// timed steps see the settings it settles on.
let warm = 0;
while (warm < cfg.warmup || (warm < cfg.warmup + MAX_TUNING_STEPS && (await tuning()))) {
  const t = await step(true);
  warm++;
  if (warm === 1) check(world, tensors, offsets, buf, cfg.compression);
  progress(`warm-up ${warm}${warm > cfg.warmup ? " (tuner still measuring)" : `/${cfg.warmup}`}`, t, warm === 1 ? " (result checked on every rank)" : "");
}
const times: number[] = [];
for (let i = 0; i < cfg.steps; i++) {
  times.push(await step(true));
  progress(`step ${i + 1}/${cfg.steps}`, times[i]);
}
// What the engine's tuner settled on (or is still trying), for the report.
const result: Record<string, unknown> = { median_s: median(times), times_s: times, warmup_steps: warm, engine: world.engineSettings };
if (cfg.mode === "replay") {
  const compute: number[] = [];
  for (let i = 0; i < cfg.steps; i++) compute.push(await step(false));
  result.compute_only_s = median(compute);
}
if (lead) process.stdout.write(`${JSON.stringify({ result })}\n`);
await world.close();
