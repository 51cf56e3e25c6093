import { spawn, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { CLI, collect, runJob, WORKERS } from "./run-job.js";

const TIMEOUT_S = 10;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function pidsOf(lines: string[] | undefined): number[] {
  return (lines ?? []).flatMap((l) => /^PID (\d+)/.exec(l)?.slice(1).map(Number) ?? []);
}

const LAYOUTS = [
  { what: "2 ranks on one host", np: 2, hosts: ["-np", "2"] },
  { what: "4 ranks on one host", np: 4, hosts: ["-np", "4"] },
  // Victim on the second host: the first host learns of it over TCP, from a peer that passes the cause on.
  { what: "2 hosts x 2 ranks", np: 4, hosts: ["-H", "a:2,b:2", "--launch-agent", "env"] },
  { what: "2 hosts x 2 ranks, named requests (engine, pipelined)", np: 4, hosts: ["-H", "a:2,b:2", "--launch-agent", "env"], how: "named" },
  { what: "4 ranks on one host, named requests (engine)", np: 4, hosts: ["-np", "4"], how: "named" },
  // The flat ring: a host's two ranks over a shared-memory channel, whose reader the victim's exit wakes.
  { what: "2 hosts x 2 ranks, flat ring", np: 4, hosts: ["-H", "a:2,b:2", "--launch-agent", "env"], env: { UNICC_HIERARCHICAL: "0" } },
];

describe("a rank that dies mid-collective", () => {
  for (const { what, np, hosts, how = "direct", env = {} } of LAYOUTS) {
    it(`${what}: every survivor fails naming it, within the bound, and nothing is left`, async () => {
      const victim = np - 1;
      const shmBefore = new Set(readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-")));
      const r = await runJob([...hosts, "node", `${WORKERS}faults.mjs`, "die", String(victim), "5", how], {
        env: { UNICC_TIMEOUT_S: String(TIMEOUT_S), ...env },
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`rank ${victim}\\b`));
      const died = Number(/DYING (\d+)/.exec(r.byRank.get(victim)!.join("\n"))![1]);
      for (let rank = 0; rank < np; rank++) {
        if (rank === victim) continue;
        const lines = r.byRank.get(rank)!.join("\n");
        const m = /ERROR (\d+) (.*)/.exec(lines);
        expect(m, `rank ${rank} output:\n${lines}`).not.toBeNull();
        expect(m![2]).toMatch(new RegExp(`rank ${victim} \\(host [^,]+, pid \\d+\\)`));
        expect(Number(m![1]) - died).toBeLessThan(TIMEOUT_S * 1000);
        expect(lines).toContain("LATER true");
      }
      for (const pid of pidsOf([...r.byRank.values()].flat())) expect(alive(pid)).toBe(false);
      const leftovers = readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-") && !shmBefore.has(f));
      expect(leftovers).toEqual([]);
    });
  }
});

describe("chaos: a random rank killed at a random moment, again and again", () => {
  const RUNS = 20;
  it(`${RUNS} runs of 4 ranks: each ends within the bound, names the right rank, leaves nothing`, async () => {
    const shmBefore = new Set(readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-")));
    let hangs = 0, leftPids = 0;
    const jobMs: number[] = [], detectMs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const victim = Math.floor(Math.random() * 4);
      const after = 1 + Math.floor(Math.random() * 20);
      const r = await runJob(["-np", "4", "node", `${WORKERS}faults.mjs`, "die", String(victim), String(after)], {
        env: { UNICC_TIMEOUT_S: String(TIMEOUT_S) },
        timeoutMs: 60_000,
      });
      const what = `run ${run}: victim ${victim} after ${after}\n${r.stdout}\n${r.stderr}`;
      if (r.ms > TIMEOUT_S * 1000 + 10_000) hangs++;
      jobMs.push(r.ms);
      const died = Number(/DYING (\d+)/.exec(r.byRank.get(victim)?.join("\n") ?? "")?.[1] ?? NaN);
      const errs = [...r.byRank.values()].flatMap((l) => l.flatMap((x) => /^ERROR (\d+)/.exec(x)?.slice(1).map(Number) ?? []));
      if (errs.length) detectMs.push(Math.max(...errs) - died);
      expect(r.code, what).not.toBe(0);
      expect(r.stderr, what).toMatch(new RegExp(`unicc: rank ${victim} \\(host [^,]+, pid \\d+\\) was killed by SIGKILL first`));
      for (let rank = 0; rank < 4; rank++) {
        if (rank === victim) continue;
        expect(r.byRank.get(rank)!.join("\n"), what).toMatch(new RegExp(`ERROR \\d+ .*rank ${victim} \\(host`));
      }
      const left = pidsOf([...r.byRank.values()].flat()).filter(alive);
      leftPids += left.length;
      expect(left, what).toEqual([]);
    }
    const leftShm = readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-") && !shmBefore.has(f));
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
    // One line for README's "Failure behaviour" figures.
    console.log(
      `chaos: ${RUNS} runs, ${hangs} hangs, ${leftPids} processes and ${leftShm.length} shm segments left; ` +
        `job ends in median ${median(jobMs)} ms (max ${Math.max(...jobMs)}); last survivor fails median ` +
        `${median(detectMs)} ms (max ${Math.max(...detectMs)}) after the kill; bound ${TIMEOUT_S} s`,
    );
    expect(hangs).toBe(0);
    expect(leftShm).toEqual([]);
  }, 300_000);
});

describe("mismatched requests", () => {
  it("a shorter buffer on one rank is a clear error on every rank", async () => {
    const r = await runJob(["-np", "3", "node", `${WORKERS}faults.mjs`, "mismatch", "1"]);
    for (let rank = 0; rank < 3; rank++) {
      const lines = r.byRank.get(rank)!.join("\n");
      expect(lines, `rank ${rank}`).toMatch(/ERROR ranks called different collectives/);
      expect(lines, `rank ${rank}`).toContain("ERROR IS UniccError true");
      expect(lines).toMatch(/allreduce #\d+ of 999 float32/);
      expect(lines).toMatch(/allreduce #\d+ of 1000 float32/);
    }
  });
});

// tmpfs hands out pages only when they are first touched: without reserving them, a /dev/shm too
// small for the job (a container's is 64 MB by default) kills a rank with SIGBUS mid-collective.
const noMountNs = spawnSync("unshare", ["-m", "true"]).status === 0 ? null : "no mount namespaces (unshare -m needs root)";
describe.skipIf(noMountNs !== null)(`a /dev/shm too small for the job${noMountNs ? `: skipped, ${noMountNs}` : ""}`, () => {
  const CASES = [
    { what: "4 ranks on one host (their shared-memory group)", hosts: ["-np", "4"], env: {}, needs: "5 MiB" },
    { what: "2 hosts x 2 ranks, flat ring (their shared-memory channels)", hosts: ["-H", "a:2,b:2", "--launch-agent", "env"], env: { UNICC_HIERARCHICAL: "0" }, needs: "8 MiB" },
  ];
  for (const { what, hosts, env, needs } of CASES) {
    it(`${what}: a clear error with /dev/shm's free space and what to do, not SIGBUS`, async () => {
      // The job in a mount namespace of its own, with a 1 MiB /dev/shm.
      const child = spawn(
        "unshare",
        ["-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec "$@"', "sh", process.execPath, CLI, "run", ...hosts,
          "node", `${WORKERS}faults.mjs`, "big"],
        { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
      );
      const r = await collect([child]);
      const out = r.stdout + r.stderr;
      expect(r.code, out).not.toBe(0);
      expect(out).not.toMatch(/SIGBUS/);
      expect(out).toMatch(new RegExp(`No space left on device; /dev/shm has \\d+ MiB free of 1 MiB and this needs ${needs}`));
      expect(out).toContain("Give the ranks more shared memory");
    });
  }

  it("the Python client's slab for a tensor: an OSError with /dev/shm's free space and what to do, and no file left", () => {
    const python = `
import os
from unicc import _shm
try:
    _shm.make("/dev/shm/unicc-slab-test", 4 << 20)
    print("MADE")
except OSError as e:
    print("ERROR", e.errno, e.strerror)
print("LEFT", os.listdir("/dev/shm"))
`;
    const r = spawnSync("unshare", ["-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs /dev/shm && exec python3 -c "$0"', python], {
      env: { ...process.env, PYTHONPATH: fileURLToPath(new URL("../python", import.meta.url)) },
      encoding: "utf8",
    });
    expect(r.stdout, r.stderr).toMatch(
      /^ERROR 28 cannot reserve 4 MiB of shared memory at \/dev\/shm\/unicc-slab-test: No space left on device; \/dev\/shm has \d+ MiB free of 1 MiB and this needs 4 MiB\. Give the ranks more shared memory/m,
    );
    expect(r.stdout).toContain("LEFT []");
  });
});
