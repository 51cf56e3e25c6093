import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

import { CLI, runJob } from "./run-job.js";

const dir = mkdtempSync(join(tmpdir(), "unicc-launcher-"));
const script = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const printEnv = script(
  "env.mjs",
  `const k = ["UNICC_RANK","UNICC_SIZE","UNICC_LOCAL_RANK","UNICC_LOCAL_SIZE","UNICC_STORE_ADDR","UNICC_JOB_ID","UNICC_HOST_ID","RANK","WORLD_SIZE","LOCAL_RANK","LOCAL_WORLD_SIZE","MASTER_ADDR","MASTER_PORT"];
   console.log(JSON.stringify(Object.fromEntries(k.map((n) => [n, process.env[n]]))));
   process.stdout.write("partial line without newline");`,
);

// Rank FAIL exits 7 after a moment; the others print their pid and sleep.
const failOne = script(
  "fail.mjs",
  `console.log("PID " + process.pid);
   const { writeFileSync } = await import("node:fs");
   writeFileSync("/dev/shm/unicc-" + process.env.UNICC_JOB_ID + "-fake" + process.env.UNICC_RANK, "x");
   if (process.env.UNICC_RANK === process.argv[2]) setTimeout(() => process.exit(7), 300);
   else setTimeout(() => {}, 60_000);`,
);

describe("unicc run", () => {
  it("gives every rank its place, the torchrun variables, and prefixes whole lines", async () => {
    const r = await runJob(["-np", "3", "node", printEnv]);
    expect(r.code).toBe(0);
    const envs = [0, 1, 2].map((rank) => JSON.parse(r.byRank.get(rank)![0]));
    envs.forEach((e, rank) => {
      expect(e).toMatchObject({
        UNICC_RANK: String(rank), UNICC_SIZE: "3", UNICC_LOCAL_RANK: String(rank), UNICC_LOCAL_SIZE: "3",
        RANK: String(rank), WORLD_SIZE: "3", LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: "3", MASTER_ADDR: "127.0.0.1",
      });
      expect(e.UNICC_JOB_ID).toMatch(/^[0-9a-f]{16}$/);
      expect(e.UNICC_JOB_ID).toBe(envs[0].UNICC_JOB_ID);
      // torch code calling init_process_group must be able to bind MASTER_PORT itself
      expect(e.UNICC_STORE_ADDR).not.toBe(`127.0.0.1:${e.MASTER_PORT}`);
      expect(r.byRank.get(rank)).toContain("partial line without newline");
    });
  });

  it("numbers ranks host by host with -H", async () => {
    const r = await runJob(["-H", "a:1,b:2", "--launch-agent", "env", "node", printEnv]);
    expect(r.code).toBe(0);
    const envs = [0, 1, 2].map((rank) => JSON.parse(r.byRank.get(rank)![0]));
    expect(envs.map((e) => [e.UNICC_HOST_ID, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE])).toEqual([["a", "0", "1"], ["b", "0", "2"], ["b", "1", "2"]]);
  });

  it("when a rank fails, stops the others, names it, and removes the job's shared memory", async () => {
    const r = await runJob(["-np", "4", "--grace", "2", "node", failOne, "2"]);
    expect(r.code).toBe(7);
    expect(r.ms).toBeLessThan(20_000);
    expect(r.stderr).toMatch(/unicc: rank 2 \(host [^,]+, pid \d+\) exited with code 7 first; stopped the other 3 ranks/);
    const pids = [...r.byRank.values()].flat().flatMap((l) => /^PID (\d+)/.exec(l)?.slice(1).map(Number) ?? []);
    expect(pids.length).toBe(4);
    pids.forEach((pid) => expect(alive(pid)).toBe(false));
    expect(readdirSync("/dev/shm").filter((f) => f.includes("-fake"))).toEqual([]);
  });

  it("SIGTERM to the launcher stops every rank and exits 143", async () => {
    const child = spawn(process.execPath, [CLI, "run", "-np", "3", "node", failOne, "none"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    while ((out.match(/PID \d+/g) ?? []).length < 3) await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGTERM");
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(143);
    for (const m of out.matchAll(/PID (\d+)/g)) expect(alive(Number(m[1]))).toBe(false);
  });

  it("rejects bad input with a one-line reason", async () => {
    for (const [args, pattern] of [
      [["-np", "0", "node"], /-np needs a positive integer/],
      [["-np", "2"], /no command to run/],
      [["-H", "a:x", "node"], /bad host 'a:x'/],
      [["--bogus", "node"], /unknown option '--bogus'/],
    ] as const) {
      const r = await runJob([...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(pattern);
    }
    const missing = await runJob(["-np", "1", "no-such-command-unicc"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/could not start 'no-such-command-unicc'/);
  });
});
