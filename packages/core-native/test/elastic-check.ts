// Checks of elastic jobs' output shared by the frameworks' tests: every worker prints
// "START step=S size=N" (rank 0, at each (re)start of the training function) and "FINAL <weights>"
// (every rank at the end); a reference computed in the test gives the weights to expect.
import { expect } from "vitest";

import type { JobResult } from "./run-job.js";

/** "0:4,4:3": the step each (re)start of the training function began at, and the size then. */
export function schedule(r: JobResult): string {
  return [...r.stdout.matchAll(/^\[\d+\] START step=(\d+) size=(\d+)$/gm)].map((m) => `${m[1]}:${m[2]}`).join(",");
}

export function finals(r: JobResult): number[][] {
  return [...r.stdout.matchAll(/^\[\d+\] FINAL (.*)$/gm)].map((m) => m[1].split(" ").map(Number));
}

/** The job ran on schedule `sched`, and each of its `ranks` final ranks holds `want(sched)` within `tolerance`. */
export function expectReference(r: JobResult, sched: string, ranks: number, want: (sched: string) => number[], tolerance: number): void {
  expect(schedule(r), r.stdout + r.stderr).toBe(sched);
  const got = finals(r);
  expect(got).toHaveLength(ranks);
  const ref = want(sched);
  for (const w of got) {
    expect(w).toHaveLength(ref.length);
    w.forEach((v, i) => expect(Math.abs(v - ref[i]), `weight ${i}`).toBeLessThan(tolerance));
  }
}
