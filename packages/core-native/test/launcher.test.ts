import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

import { launch } from "../src/ts/launcher/index.js";
import { CLI, runJob } from "./run-job.js";

const DIST_INDEX = pathToFileURL(CLI.replace(/cli\.js$/, "index.js")).href;
const dir = mkdtempSync(join(tmpdir(), "unicc-launcher-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const script = (name: string, body: string) => {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
};

/** Running, and not a zombie waiting for a reaper. */
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

const pidsIn = (text: string) => [...text.matchAll(/PIDS? ([\d ]+)/g)].flatMap((m) => m[1].trim().split(" ").map(Number));
const shmOf = (jobId: string) => readdirSync("/dev/shm").filter((f) => f.startsWith(`unicc-${jobId}-`));

const VARS = [
  "UNICC_RANK", "UNICC_SIZE", "UNICC_LOCAL_RANK", "UNICC_LOCAL_SIZE", "UNICC_STORE_ADDR", "UNICC_JOB_ID", "UNICC_HOST_ID",
  "UNICC_TIMEOUT_S", "UNICC_FORWARDED", "UNICC_NETWORK_INTERFACE", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
];

// Script lines that wait, through the job's store, until every rank has got this far.
const ALL_UP = `
  const { StoreClient } = await import(${JSON.stringify(DIST_INDEX)});
  const store = await StoreClient.connect(process.env.UNICC_STORE_ADDR, { timeoutMs: 30000, token: process.env.UNICC_JOB_TOKEN });
  if ((await store.add("up", 1)) === Number(process.env.UNICC_SIZE)) await store.set("all-up", Buffer.from("1"));
  await store.get("all-up", 60000);
  store.close();`;

// Prints its environment and argv once every rank is connected to the store, and (rank 0)
// checks that MASTER_PORT is free to bind.
const envScript = script(
  "env.mjs",
  `import { createServer } from "node:net";
   const env = Object.fromEntries(${JSON.stringify(VARS)}.map((n) => [n, process.env[n]]));
   ${ALL_UP}
   if (process.env.UNICC_RANK === "0") {
     await new Promise((resolve, reject) => { const s = createServer().once("error", reject).listen(Number(env.MASTER_PORT), env.MASTER_ADDR, () => s.close(resolve)); });
     env.masterPortBound = true;
   }
   console.log(JSON.stringify({ ...env, argv: process.argv.slice(2) }));`,
);

// Prints its pid and a grandchild's, writes a fake shared-memory file of the job; once all ranks
// have, rank argv[2] exits 7 (or kills itself if argv[3] is "signal"); the others sleep, ignoring
// SIGTERM if argv[4] is "stubborn".
const sleeper = script(
  "sleeper.mjs",
  `import { spawn } from "node:child_process";
   import { writeFileSync } from "node:fs";
   const [failRank, how, mood] = process.argv.slice(2);
   if (mood === "stubborn") process.on("SIGTERM", () => {});
   setInterval(() => {}, 60_000);
   const grandchild = spawn("sleep", ["60"], { stdio: "ignore" });
   writeFileSync("/dev/shm/unicc-" + process.env.UNICC_JOB_ID + "-fake" + process.env.UNICC_RANK, "x");
   console.log("JOB " + process.env.UNICC_JOB_ID);
   console.log("PIDS " + process.pid + " " + grandchild.pid);
   ${ALL_UP}
   if (process.env.UNICC_RANK === failRank) how === "signal" ? process.kill(process.pid, "SIGKILL") : process.exit(7);`,
);

/** Starts the CLI and resolves once `ready` matched `count` times in its stdout. */
function startCli(args: string[], ready: RegExp, count: number) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  const closed = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })),
  );
  child.stderr.on("data", (d) => (stderr += d));
  const started = new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (d) => {
      stdout += d;
      if ((stdout.match(new RegExp(ready, "g")) ?? []).length >= count) resolve(stdout);
    });
    closed.then(() => reject(new Error(`launcher ended before its ranks were ready:\n${stdout}\n${stderr}`)));
  });
  return { child, started, closed };
}

describe("unicc run", () => {
  it("--network-interface: ranks are told the interface, and the store listens on its address", async () => {
    const r = await runJob(["--network-interface", "lo", "-np", "2", "node", envScript]);
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1]) {
      const e = JSON.parse(r.byRank.get(rank)![0]);
      expect(e.UNICC_NETWORK_INTERFACE).toBe("lo");
      expect(e.UNICC_STORE_ADDR).toMatch(/^127\.0\.0\.1:\d+$/);
    }
  });

  it("gives every rank its place, the store, a free MASTER_PORT and the torchrun variables", async () => {
    const r = await runJob(["-np", "3", "--timeout", "9", "--", "node", envScript, "a b", "--np", "x"], {
      env: { UNICC_FORWARDED: "yes" },
    });
    expect(r.code, r.stderr).toBe(0);
    const envs = [0, 1, 2].map((rank) => JSON.parse(r.byRank.get(rank)![0]));
    const jobId = envs[0].UNICC_JOB_ID;
    expect(jobId).toMatch(/^[0-9a-f]{16}$/);
    const storePort = Number(/^127\.0\.0\.1:(\d+)$/.exec(envs[0].UNICC_STORE_ADDR)![1]);
    envs.forEach((e, rank) => {
      expect(e).toEqual({
        UNICC_RANK: String(rank), UNICC_SIZE: "3", UNICC_LOCAL_RANK: String(rank), UNICC_LOCAL_SIZE: "3",
        UNICC_STORE_ADDR: `127.0.0.1:${storePort}`, UNICC_JOB_ID: jobId, UNICC_HOST_ID: undefined, UNICC_TIMEOUT_S: "9",
        UNICC_FORWARDED: "yes", RANK: String(rank), WORLD_SIZE: "3", LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: "3",
        MASTER_ADDR: "127.0.0.1", MASTER_PORT: e.MASTER_PORT, argv: ["a b", "--np", "x"],
        ...(rank === 0 ? { masterPortBound: true } : {}),
      });
      expect(Number(e.MASTER_PORT)).toBeGreaterThan(0);
      expect(e.MASTER_PORT).toBe(envs[0].MASTER_PORT);
    });
    expect(Number(envs[0].MASTER_PORT)).not.toBe(storePort);
    // a second job gets a job id of its own
    const again = await runJob(["-np", "1", "node", envScript]);
    expect(JSON.parse(again.byRank.get(0)![0]).UNICC_JOB_ID).not.toBe(jobId);
  });

  it("prefixes whole lines of stdout and stderr with the rank, however the ranks write them and however long", async () => {
    const writer = script(
      "writer.mjs",
      `const r = process.env.UNICC_RANK;
       let text = "";
       for (let i = 0; i < 2000; i++) text += "rank " + r + " line " + i + " " + "x".repeat(i % 97) + (i % 500 === 0 ? "\\r" : "") + "\\n";
       const write = (s) => new Promise((resolve) => process.stdout.write(s, resolve));
       for (let at = 0; at < text.length; ) { const n = 1 + Math.floor(Math.random() * 3000); await write(text.slice(at, at + n)); at += n; }
       // A 3 MB line (a 1000-class confusion matrix in a --json line is 2 MB) in pieces of up to 200 kB.
       const long = "long " + r + " " + (r + "0123456789").repeat(300_000) + "\\n";
       for (let at = 0; at < long.length; ) { const n = 1 + Math.floor(Math.random() * 200_000); await write(long.slice(at, at + n)); at += n; }
       process.stderr.write("err " + r + "\\nno newline at the end " + r);`,
    );
    const r = await runJob(["-np", "3", "node", writer]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines.pop()).toBe("");
    for (let rank = 0; rank < 3; rank++) {
      const mine = lines.filter((l) => l.startsWith(`[${rank}] `)).map((l) => l.slice(`[${rank}] `.length));
      const long = `long ${rank} ${`${rank}0123456789`.repeat(300_000)}`;
      expect(mine.length).toBe(2001);
      expect(mine.pop() === long, "the long line arrives whole, prefixed once").toBe(true);
      expect(mine).toEqual(Array.from({ length: 2000 }, (_, i) => `rank ${rank} line ${i} ${"x".repeat(i % 97)}${i % 500 === 0 ? "\r" : ""}`));
      expect(r.stderr).toContain(`[${rank}] err ${rank}\n`);
      expect(r.stderr).toContain(`[${rank}] no newline at the end ${rank}\n`);
    }
    expect(lines.length).toBe(6003);
  });

  it("numbers ranks host by host; -np takes the first slots of a hostfile", async () => {
    const r = await runJob(["-H", "a:1,b:2", "--launch-agent", "env", "node", envScript]);
    expect(r.code, r.stderr).toBe(0);
    const envs = [0, 1, 2].map((rank) => JSON.parse(r.byRank.get(rank)![0]));
    expect(envs.map((e) => [e.RANK, e.UNICC_HOST_ID, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE, e.WORLD_SIZE])).toEqual([
      ["0", "a", "0", "1", "3"], ["1", "b", "0", "2", "3"], ["2", "b", "1", "2", "3"],
    ]);
    // hosts that are not this machine: the store listens on an address they can reach
    expect(envs[0].MASTER_ADDR).not.toMatch(/^127\./);

    const hostfile = script("hosts", "# two hosts\nh1 slots=2\nh2:3  # trailing comment\n\n");
    const f = await runJob(["--hostfile", hostfile, "-np", "3", "--rendezvous-addr", "127.0.0.1", "--launch-agent", "env", "node", envScript]);
    expect(f.code, f.stderr).toBe(0);
    const fe = [0, 1, 2].map((rank) => JSON.parse(f.byRank.get(rank)![0]));
    expect(fe.map((e) => [e.UNICC_HOST_ID, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE, e.MASTER_ADDR])).toEqual([
      ["h1", "0", "2", "127.0.0.1"], ["h1", "1", "2", "127.0.0.1"], ["h2", "0", "1", "127.0.0.1"],
    ]);
  });

  it("through an ssh agent, passes the environment and arguments shell-quoted, and cleans up over it", async () => {
    // Stands in for ssh: joins its arguments into one string for a shell, with none of this environment.
    const log = join(dir, "ssh.log");
    const ssh = script(
      "ssh",
      `#!/bin/sh\nhost="$1"; shift; printf '%s\\n' "$host $*" >> ${log}\nexec env -i PATH="$PATH" sh -c "$*"\n`,
    );
    chmodSync(ssh, 0o755);
    const tricky = ["it's", '"quoted" $HOME `x` \\ ;|&', "", "a  b"];
    const r = await runJob(["-H", "h1:1,h2:1", "--rendezvous-addr", "127.0.0.1", "--launch-agent", `${ssh} {host}`, "node", envScript, ...tricky], {
      env: { UNICC_FORWARDED: "it's forwarded" },
    });
    expect(r.code, r.stderr).toBe(0);
    const envs = [0, 1].map((rank) => JSON.parse(r.byRank.get(rank)![0]));
    envs.forEach((e, rank) => {
      expect(e).toMatchObject({ UNICC_RANK: String(rank), UNICC_HOST_ID: `h${rank + 1}`, UNICC_FORWARDED: "it's forwarded", argv: tricky });
    });
    expect(readFileSync(log, "utf8")).toContain(`h2 sh -c 'rm -f /dev/shm/unicc-${envs[0].UNICC_JOB_ID}-*'`);
  });

  it("when a rank fails, stops the others and what they started, names it, and removes the job's shared memory", async () => {
    const r = await runJob(["-np", "4", "--grace", "20", "node", sleeper, "2"]);
    expect(r.code).toBe(7);
    expect(r.ms).toBeLessThan(15_000); // SIGTERM did it, not the 20 s grace
    expect(r.stderr).toMatch(/^unicc: rank 2 \(host [^,]+, pid \d+\) exited with code 7 first; stopped the other 3 ranks$/m);
    const pids = pidsIn(r.stdout);
    expect(pids.length).toBe(8);
    pids.forEach((pid) => expect(alive(pid), `pid ${pid}`).toBe(false));
    const jobId = /JOB (\w+)/.exec(r.stdout)![1];
    expect(shmOf(jobId)).toEqual([]);
  });

  it("a rank killed by a signal ends the job with 128+signal; one ignoring SIGTERM gets SIGKILL after the grace", async () => {
    const r = await runJob(["-np", "3", "--grace", "1", "node", sleeper, "1", "signal", "stubborn"]);
    expect(r.code).toBe(137);
    expect(r.stderr).toMatch(/unicc: rank 1 \(host [^,]+, pid \d+\) was killed by SIGKILL first; stopped the other 2 ranks/);
    pidsIn(r.stdout).forEach((pid) => expect(alive(pid), `pid ${pid}`).toBe(false));
  });

  it("a rank killed at the moment a peer fails (reporting its death) is named as the cause, the peer beside it", async () => {
    // Rank 0 exits 3 first; rank 2, deaf to the launcher's SIGTERM, is killed 50 ms later: the
    // order in which the launcher hears of near-simultaneous deaths says nothing about the cause.
    const pair = script(
      "pair.mjs",
      `process.on("SIGTERM", () => {}); setInterval(() => {}, 60_000); ${ALL_UP}
       if (process.env.UNICC_RANK === "0") process.exit(3);
       if (process.env.UNICC_RANK === "2") setTimeout(() => process.kill(process.pid, "SIGKILL"), 50);`,
    );
    const r = await runJob(["-np", "3", "--grace", "1", "node", pair]);
    expect(r.code).toBe(137);
    expect(r.stderr).toMatch(
      /unicc: rank 2 \(host [^,]+, pid \d+\) was killed by SIGKILL first; rank 0 exited with code 3 at the same moment; stopped the other 1 rank\n/,
    );
  });

  for (const [sig, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it(`${sig} to the launcher stops every rank and what they started, cleans up, exits ${code}`, async () => {
      const job = startCli(["run", "-np", "3", "node", sleeper, "none"], /PIDS \d+ \d+\n/, 3);
      const out = await job.started;
      job.child.kill(sig);
      const end = await job.closed;
      expect(end.code).toBe(code);
      expect(end.stderr).toMatch(new RegExp(`unicc: ${sig} received; stopped all 3 ranks`));
      const pids = pidsIn(out);
      expect(pids.length).toBe(6);
      pids.forEach((pid) => expect(alive(pid), `pid ${pid}`).toBe(false));
      expect(shmOf(/JOB (\w+)/.exec(out)![1])).toEqual([]);
    });
  }

  it("rejects bad input with one line and exit 2, a missing command with 127", async () => {
    for (const [args, pattern] of [
      [["-np", "0", "node"], /-np needs a whole number of at least 1, got '0'/],
      [["-np", "two", "node"], /-np needs a whole number of at least 1, got 'two'/],
      [["-np"], /-np needs a value/],
      [["-np", "2"], /no command to run/],
      [["-np", "2", "--"], /no command to run/],
      [["-H", "a:x", "node"], /bad host 'a:x': expected host:slots/],
      [["-H", "a", "node"], /bad host 'a'/],
      [["-H", "a:1,a:2", "node"], /host 'a' is given twice/],
      [["-H", "a:1", "-np", "2", "node"], /-np 2 is more than the 1 slots/],
      [["--hostfile", join(dir, "missing"), "node"], /cannot read hostfile/],
      [["--grace", "soon", "node"], /--grace needs a number of seconds/],
      [["--bogus", "node"], /unknown option '--bogus'/],
      [["--network-interface", "nosuch0", "-np", "1", "node"], /--network-interface nosuch0: this host has no such interface \(it has lo/],
      [["--nnodes", "2", "--node-rank", "1", "node"], /--nnodes, --node-rank, --master-addr and --master-port go together/],
      [["--nnodes", "2", "--node-rank", "2", "--master-addr", "h", "--master-port", "9", "node"], /--node-rank 2 must be below --nnodes 2/],
      [["--nnodes", "2", "--node-rank", "0", "--master-addr", "h", "--master-port", "9", "-H", "a:1", "node"], /--nnodes runs this node's ranks only/],
      [["--slurm", "--nodes", "2", "node"], /--slurm needs --nodes N and --ntasks-per-node M/],
      [["--nodes", "2", "node"], /--nodes, --ntasks-per-node and --partition go with --slurm/],
      [["--rendezvous", "redis://x:1", "node"], /--rendezvous takes etcd:\/\/HOST:PORT\/PREFIX/],
      [["--bridge-dir", "shm", "node"], /--bridge-dir needs an absolute folder, got 'shm'/],
      [["--bridge", "-H", "elsewhere:2", "node"], /--bridge starts bridges on this host only/],
      [["--min-np", "1", "--start-timeout", "0", "node"], /--start-timeout needs a positive number of seconds, got '0'/],
      [["--start-timeout", "9", "node"], /--start-timeout goes with --min-np\/--max-np/],
      [["--ray", "h:1", "node"], /--ray goes with --min-np\/--max-np/],
      [["--ray", "h:1", "--min-np", "1", "-H", "a:1", "node"], /--ray takes its hosts from the Ray cluster/],
      [["--ray", "h:1", "--min-np", "1", "--slurm", "--nodes", "1", "--ntasks-per-node", "1", "node"], /--ray takes its hosts from the Ray cluster/],
      [["--slurm", "--nodes", "1", "--ntasks-per-node", "1", "--min-np", "1", "--host-discovery-script", "/bin/true", "node"], /--host-discovery-script does not go with --slurm/],
    ] as const) {
      const r = await runJob([...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(pattern);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    const missing = await runJob(["-np", "2", "no-such-command-unicc"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toBe("unicc run: command not found: no-such-command-unicc\n");
  });

  it("elastic --start-timeout: a rank that has not connected by then is stopped and named, and below --min-np the job ends", async () => {
    // Worker 0 asks for the first generation as unicc.init would; worker 1 never does.
    const starter = script(
      "starter.mjs",
      `const { StoreClient } = await import(${JSON.stringify(DIST_INDEX)});
       if (process.env.UNICC_ELASTIC_ID === "1") setInterval(() => {}, 60_000);
       else {
         const store = await StoreClient.connect(process.env.UNICC_STORE_ADDR, { timeoutMs: 30000, token: process.env.UNICC_JOB_TOKEN });
         await store.set("unicc/elastic/want/0", Buffer.from("-1"));
         setInterval(() => {}, 60_000);
       }`,
    );
    const r = await runJob(["--min-np", "2", "-np", "2", "--start-timeout", "4", "--grace", "1", "node", starter]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/stopped worker 1 \(host \S+, pid \d+\): they did not connect within 4 s \(--start-timeout\)/);
    expect(r.stderr).toMatch(/elastic job ended: 1 rank left, fewer than --min-np 2; lost: worker 1 \(host \S+, pid \d+\) did not connect within 4 s \(--start-timeout\)\n$/);
  });

  it("a discovery that fails at the start is named as the user gave it: --host-discovery-script S, or --ray HOST:PORT", async () => {
    const empty = script("no-hosts.sh", "#!/bin/sh\n");
    chmodSync(empty, 0o755);
    for (const [args, env, pattern] of [
      [["--min-np", "1", "--host-discovery-script", "/bin/false"], {}, /^unicc run: --host-discovery-script \/bin\/false failed \(Command failed: \/bin\/false/],
      [["--min-np", "1", "--host-discovery-script", empty], {}, /^unicc run: --host-discovery-script \S+no-hosts.sh offers 0 slots, fewer than the 1 to start with/],
      [["--min-np", "1", "--ray", "127.0.0.1:9"], { UNICC_RAY_PYTHON: "/bin/false" }, /^unicc run: --ray 127.0.0.1:9 failed \(Command failed: \/bin\/false -m unicc._ray hosts 127.0.0.1:9/],
    ] as const) {
      const r = await runJob([...args, "node", "-e", "0"], { env });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(pattern);
    }
  });

  it("elastic --bridge: a host the discovery script lists elsewhere gets no ranks (its bridge could not start there), said once", async () => {
    const hosts = script("hosts.sh", "#!/bin/sh\necho localhost:1\necho elsewhere-unicc:1\n");
    chmodSync(hosts, 0o755);
    const r = await runJob(["--min-np", "1", "--max-np", "2", "-H", "localhost:1", "--host-discovery-script", hosts, "--discovery-interval", "0.1",
      "--bridge", "--", "node", "-e", "setTimeout(() => {}, 1500)"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("unicc run: --bridge starts bridges on this host only: not starting ranks on elsewhere-unicc\n");
  });

  it("prints usage on --help and for unknown subcommands", async () => {
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const c = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
        let out = "", err = "";
        c.stdout.on("data", (d) => (out += d));
        c.stderr.on("data", (d) => (err += d));
        c.on("close", (code) => resolve({ code, out, err }));
      });
    expect(await cli(["--help"])).toMatchObject({ code: 0, out: expect.stringMatching(/unicc run .*\n.*unicc doctor/s) });
    for (const args of [["run", "--help"], ["run", "-np", "2", "-h", "node"]])
      expect(await cli(args)).toMatchObject({ code: 0, out: expect.stringMatching(/^usage: unicc run .*--rendezvous-addr.*--grace/s) });
    expect(await cli([])).toMatchObject({ code: 2, err: expect.stringMatching(/^usage: unicc/) });
    expect(await cli(["frobnicate"])).toMatchObject({ code: 2, err: expect.stringMatching(/^unicc: unknown command 'frobnicate'\nusage/) });
  });

  it("launch() reports the failed rank to a program, with the output where it asked", async () => {
    let out = "", err = "";
    const sink = (add: (s: string) => void) => new Writable({ write: (c, _e, done) => (add(String(c)), done()) });
    const failing = script(
      "fail3.mjs",
      `setInterval(() => {}, 1000); console.log("hi " + process.env.RANK); ${ALL_UP} if (process.env.RANK === "1") process.exit(3);`,
    );
    const sigtermListeners = process.listenerCount("SIGTERM");
    const res = await launch(
      { command: [process.execPath, failing], hosts: [{ name: "localhost", slots: 2 }], graceMs: 20_000 },
      { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) },
    );
    expect(res).toMatchObject({ exitCode: 3, failedRank: 1, jobId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(out.split("\n").sort()).toEqual(["", "[0] hi 0", "[1] hi 1"]);
    expect(err).toMatch(/rank 1 .* exited with code 3 first; stopped the other 1 rank\n$/);
    expect(existsSync(`/dev/shm/unicc-${res.jobId}-x`)).toBe(false);
    expect(process.listenerCount("SIGTERM")).toBe(sigtermListeners);
  });
});
