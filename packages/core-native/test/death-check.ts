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

/**
 * For a job whose rank `victim` printed "PID <its pid> <its bridge's pid>" and "DYING <ms>" as its
 * bridge was SIGKILLed: the victim printed "ERROR <ms> BridgeError: ..." containing `own` (BRIDGE
 * standing for the bridge's pid), every other rank "ERROR <ms> UniccError: ..." naming the victim's
 * death: its bridge, or its own process where the peers waited on the client lane (it ends on the
 * BridgeError); all less than `boundMs` after the victim's line.
 */
export function expectBridgeDeathNamed(r: JobResult, victim: number, np: number, boundMs: number, own: string): void {
  expect(r.code).not.toBe(0);
  const [, clientPid, bridgePid] = /PID (\d+) (\d+)/.exec(lines(r, victim))!;
  const died = Number(/DYING (\d+)/.exec(lines(r, victim))![1]);
  const mine = /ERROR (\d+) BridgeError: (.*)/.exec(lines(r, victim));
  expect(mine, lines(r, victim)).not.toBeNull();
  expect(mine![2]).toContain(own.replace("BRIDGE", bridgePid));
  expect(Number(mine![1]) - died).toBeLessThan(boundMs);
  for (let rank = 0; rank < np; rank++) {
    if (rank === victim) continue;
    const m = /ERROR (\d+) UniccError: (.*)/.exec(lines(r, rank));
    expect(m, `rank ${rank}:\n${lines(r, rank)}`).not.toBeNull();
    expect(m![2]).toMatch(new RegExp(`rank ${victim} \\(host [^,]+, pid (${bridgePid}|${clientPid})\\) died`));
    expect(Number(m![1]) - died).toBeLessThan(boundMs);
  }
}
