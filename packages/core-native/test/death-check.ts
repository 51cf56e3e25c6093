import { expect } from "vitest";
import { lines, type JobResult } from "./run-job.js";

/**
 * For a job whose rank `victim` printed "DYING <ms>" and was then SIGKILLed: every other of its `np`
 * ranks printed "ERROR <ms> ..." with a Python UniccError naming the victim's death (rank, host,
 * pid), less than `boundMs` after the victim's line.
 */
export function expectDeathNamed(r: JobResult, victim: number, np: number, boundMs: number): void {
  expect(r.code).not.toBe(0);
  const died = Number(/DYING (\d+)/.exec(lines(r, victim))![1]);
  for (let rank = 0; rank < np; rank++) {
    if (rank === victim) continue;
    const m = /ERROR (\d+) (.*)/.exec(lines(r, rank));
    expect(m, `rank ${rank}:\n${lines(r, rank)}\n${r.stderr}`).not.toBeNull();
    expect(m![2]).toMatch(new RegExp(`UniccError: .*rank ${victim} \\(host [^,]+, pid \\d+\\) died`));
    expect(Number(m![1]) - died).toBeLessThan(boundMs);
  }
}
