// `unicc run --bridge`: the launcher starts every rank's bridge and the client connects to it
// (UNICC_BRIDGE_SOCKET) instead of starting its own. Torch ranks must see no difference in results,
// and failures must still name what died.
import { randomInt } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { bridgeLeftovers, lines, runJob, venvPython, WORKERS } from "./helpers.js";
import { expectBridgeDeathNamed, expectDeathNamed } from "../../core-native/test/death-check.js";

const TIMEOUT_S = 10;
let python: string;
let before: Set<string>;

beforeAll(() => {
  python = venvPython();
}, 600_000);
beforeEach(() => {
  before = new Set(bridgeLeftovers());
});
afterEach(() => {
  expect(bridgeLeftovers().filter((f) => !before.has(f))).toEqual([]);
});

const byRank = (r: { byRank: Map<number, string[]> }) => [0, 1, 2, 3].map((k) => (r.byRank.get(k) ?? []).join("\n"));
describe("torch ranks give the same results with --bridge as without", () => {
  for (const mode of ["opt+hook", "pg"]) {
    it(`${mode}: every rank's output (the differences from the 1-process reference) is identical, with the bridges' folder in /dev/shm or one of the user's`, async () => {
      const seed = String(randomInt(1, 1 << 20));
      const job = (extra: string[]) => runJob(["-np", "4", ...extra, "--", python, `${WORKERS}equivalence.py`, mode, seed]);
      const own = await job([]);
      expect(own.code, own.stdout + own.stderr).toBe(0);
      const dir = mkdtempSync(join(tmpdir(), "unicc-bridge-dir-"));
      try {
        for (const extra of [["--bridge"], ["--bridge-dir", dir]]) {
          const r = await job(extra);
          expect(r.code, r.stdout + r.stderr).toBe(0);
          expect(byRank(r)).toEqual(byRank(own));
          expect(byRank(r)[0]).toContain(`OK ${mode}`);
        }
        expect(readdirSync(dir)).toEqual([]); // sockets and slabs gone with the job
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("failures with --bridge name what died", () => {
  it("a killed peer: every other rank raises naming it", async () => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--bridge", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, "peer", String(victim)]);
    expectDeathNamed(r, victim, 3, TIMEOUT_S * 1000);
    expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(.*\\) was killed by SIGKILL first`));
  });

  it("a rank that raises: the launcher names its exit, the others raise naming it, and its bridge adds no line to the traceback (the client said it was leaving)", async () => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--bridge", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, "raise", String(victim)]);
    expectDeathNamed(r, victim, 3, TIMEOUT_S * 1000);
    expect(r.stderr).toContain(`[${victim}] ValueError: rank ${victim} gives up`);
    expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(host [^,]+, pid \\d+\\) exited with code 1 first`));
    expect(r.stderr).not.toContain("closed the connection without closing the world");
  });

  it("a killed bridge: its rank raises BridgeError, the others name that rank, the launcher names the bridge", async () => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--bridge", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, "bridge", String(victim)]);
    expectBridgeDeathNamed(r, victim, 3, TIMEOUT_S * 1000, `rank ${victim}: the bridge process (pid BRIDGE) closed its connection (unicc run --bridge started it`);
    const [, , bridgePid] = /PID (\d+) (\d+)/.exec(lines(r, victim))!;
    expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(.*\\) lost its bridge \\(pid ${bridgePid}\\), which was killed by SIGKILL first`));
  });

  it("a rank that never connects (fails first, or does not use unicc) leaves no bridge waiting: the job ends at once", async () => {
    const ok = await runJob(["-np", "2", "--bridge", "--", "true"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.ms).toBeLessThan(5000);
    const bad = await runJob(["-np", "2", "--bridge", "--", "sh", "-c", 'exit "$UNICC_RANK"']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/unicc: rank 1 \(.*\) exited with code 1 first/);
    expect(bad.ms).toBeLessThan(5000);
  });
});
