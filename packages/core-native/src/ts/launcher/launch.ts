import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { createInterface } from "node:readline";
import type { Writable } from "node:stream";

import { StoreServer } from "../store/index.js";
import type { HostSlots, LaunchOptions } from "./options.js";

export interface LaunchResult {
  exitCode: number;
  /** The rank whose failure ended the job, if one did. */
  failedRank?: number;
  jobId: string;
}

interface Rank {
  rank: number;
  host: string;
  child: ChildProcess;
  exited: Promise<void>;
  running: boolean;
}

const LOCAL_NAMES = new Set(["localhost", "127.0.0.1", "::1", hostname()]);
const isLocal = (h: HostSlots) => LOCAL_NAMES.has(h.name);

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

function defaultRendezvousAddr(hosts: HostSlots[]): string {
  if (hosts.every(isLocal)) return "127.0.0.1";
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  throw new Error("unicc: no non-loopback address to serve the rendezvous store from; pass --rendezvous-addr");
}

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** argv that runs `argv` on `host` through the launch agent (ssh needs one shell-quoted string). */
function throughAgent(agent: string, host: string, argv: string[]): string[] {
  const parts = agent.split(/\s+/).filter(Boolean).map((p) => p.replaceAll("{host}", host));
  const viaShell = parts[0]?.endsWith("ssh");
  return [...parts, ...(viaShell ? [argv.map(shellQuote).join(" ")] : argv)];
}

function prefixLines(stream: NodeJS.ReadableStream | null, out: Writable, prefix: string): Promise<void> {
  if (!stream) return Promise.resolve();
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  rl.on("line", (line) => out.write(`${prefix}${line}\n`));
  return new Promise((resolve) => rl.once("close", resolve));
}

function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Starts the store and every rank, relays their output, and ends the job as a whole: the first
 * rank to fail (or a signal to the launcher) stops all others, and whatever happens, every
 * process group it started is killed and the job's shared memory removed before it returns.
 */
export async function launch(
  o: LaunchOptions,
  io: { stdout?: Writable; stderr?: Writable; env?: NodeJS.ProcessEnv } = {},
): Promise<LaunchResult> {
  const stdout = io.stdout ?? process.stdout, stderr = io.stderr ?? process.stderr;
  const baseEnv = io.env ?? process.env;
  const jobId = randomBytes(8).toString("hex");
  const addr = o.rendezvousAddr ?? defaultRendezvousAddr(o.hosts);
  const store = await StoreServer.listen(addr, 0);
  const masterPort = await freePort(addr);
  const size = o.hosts.reduce((s, h) => s + h.slots, 0);
  const ranks: Rank[] = [];
  let first: { rank: Rank; code: number; why: string } | undefined;
  let stopping = false;

  const stopAll = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    for (const r of ranks) if (r.running) signalGroup(r.child.pid, sig);
    const killer = setTimeout(() => ranks.forEach((r) => r.running && signalGroup(r.child.pid, "SIGKILL")), o.graceMs);
    killer.unref();
  };

  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled ??= sig;
    stopAll(sig === "SIGINT" ? "SIGINT" : "SIGTERM");
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    let rank = 0;
    for (const host of o.hosts) {
      for (let local = 0; local < host.slots; local++, rank++) {
        const rankEnv: Record<string, string> = {
          UNICC_RANK: String(rank),
          UNICC_SIZE: String(size),
          UNICC_LOCAL_RANK: String(local),
          UNICC_LOCAL_SIZE: String(host.slots),
          UNICC_STORE_ADDR: `${addr.includes(":") ? `[${addr}]` : addr}:${store.port}`,
          UNICC_JOB_ID: jobId,
          RANK: String(rank),
          WORLD_SIZE: String(size),
          LOCAL_RANK: String(local),
          LOCAL_WORLD_SIZE: String(host.slots),
          MASTER_ADDR: addr,
          MASTER_PORT: String(masterPort),
          ...(o.timeoutS ? { UNICC_TIMEOUT_S: String(o.timeoutS) } : {}),
          ...(o.hosts.length > 1 || !isLocal(host) ? { UNICC_HOST_ID: host.name } : {}),
        };
        const local_ = isLocal(host);
        const argv = local_
          ? o.command
          : throughAgent(o.launchAgent, host.name, ["env", ...Object.entries(rankEnv).map(([k, v]) => `${k}=${v}`), ...o.command]);
        const child = spawn(argv[0], argv.slice(1), {
          env: { ...baseEnv, ...rankEnv },
          stdio: ["ignore", "pipe", "pipe"],
          detached: true, // its own process group, so stopping it reaches its children too
        });
        const r: Rank = { rank, host: local_ ? hostname() : host.name, child, running: true, exited: Promise.resolve() };
        const output = Promise.all([
          prefixLines(child.stdout, stdout, `[${rank}] `),
          prefixLines(child.stderr, stderr, `[${rank}] `),
        ]);
        r.exited = new Promise<void>((resolve) => {
          let spawnError: Error | undefined;
          child.once("error", (e) => {
            spawnError = e;
          });
          child.once("close", async (code, signal) => {
            r.running = false;
            await output;
            const failed = spawnError || code !== 0;
            if (failed && !first && !signalled) {
              const why = spawnError
                ? `could not start '${argv[0]}': ${spawnError.message}`
                : signal
                  ? `was killed by ${signal}`
                  : `exited with code ${code}`;
              const exitCode = spawnError ? 127 : signal ? 128 + (osSignal(signal) ?? 1) : code!;
              first = { rank: r, code: exitCode, why };
              stopAll("SIGTERM");
            }
            resolve();
          });
        });
        ranks.push(r);
      }
    }
    await Promise.all(ranks.map((r) => r.exited));
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // Whatever the ranks left running in their groups goes too.
    for (const r of ranks) signalGroup(r.child.pid, "SIGKILL");
    removeJobShm(jobId, o);
    await store.close();
  }

  if (first) {
    const others = size - 1;
    stderr.write(
      `unicc: rank ${first.rank.rank} (host ${first.rank.host}, pid ${first.rank.child.pid ?? "?"}) ${first.why} first; stopped the other ${others} rank${others === 1 ? "" : "s"}\n`,
    );
    return { exitCode: first.code || 1, failedRank: first.rank.rank, jobId };
  }
  if (signalled) {
    stderr.write(`unicc: ${signalled} received; stopped all ${size} ranks\n`);
    return { exitCode: signalled === "SIGINT" ? 130 : 143, jobId };
  }
  return { exitCode: 0, jobId };
}

function osSignal(sig: NodeJS.Signals): number | undefined {
  const table: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };
  return table[sig];
}

function removeJobShm(jobId: string, o: LaunchOptions): void {
  const prefix = `unicc-${jobId}-`;
  try {
    for (const f of readdirSync("/dev/shm")) if (f.startsWith(prefix)) rmSync(`/dev/shm/${f}`, { force: true });
  } catch {
    // no /dev/shm here
  }
  for (const h of o.hosts) {
    if (isLocal(h)) continue;
    const argv = throughAgent(o.launchAgent, h.name, ["sh", "-c", `rm -f /dev/shm/${prefix}*`]);
    spawn(argv[0], argv.slice(1), { stdio: "ignore" }).on("error", () => {});
  }
}
