import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import { lines } from "../../core-native/test/run-job.js";

export { lines, runJob, type JobResult } from "../../core-native/test/run-job.js";

export const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));
const SETUP = fileURLToPath(new URL("../scripts/setup-venv.sh", import.meta.url));

/** The venv's python (made by scripts/setup-venv.sh: mxnet 1.9.1 + numpy 1.23.5 + the unicc packages). */
export function venvPython(): string {
  return execFileSync("bash", [SETUP], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
}

/** Every DIFF line of every rank is below its limit; returns how many there were per rank. */
export function diffs(r: { byRank: Map<number, string[]> }, ranks: number, limit: (what: string) => number): number[] {
  const counts: number[] = [];
  for (let rank = 0; rank < ranks; rank++) {
    let n = 0;
    for (const m of lines(r, rank).matchAll(/^DIFF (.+) (\S+)$/gm)) {
      if (!(Number(m[2]) <= limit(m[1]))) throw new Error(`rank ${rank}: ${m[1]} differs by ${m[2]} (limit ${limit(m[1])})`);
      n++;
    }
    counts.push(n);
  }
  return counts;
}
