import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { constants, hostname } from "node:os";
import type { Writable } from "node:stream";

import { EtcdStore } from "../store/etcd.js";
import { StoreServer } from "../store/index.js";
import { agentArgv, commandExists, defaultRendezvousAddr, isLocalHost } from "./agent.js";
import { discoverHosts, pollHosts } from "./discovery.js";
import { ElasticMembership } from "./elastic.js";
import { DEFAULT_GRACE_MS, DEFAULT_LAUNCH_AGENT, type ElasticLaunch, firstSlots, type HostSlots, type LaunchOptions, UsageError } from "./options.js";
import { relayLines } from "./relay.js";
import { DEFAULT_BRIDGE_DIR, removeBridgeFiles, startBridge, type RankBridge } from "./bridges.js";
import { DEFAULT_TIMEOUT_S, interfaceAddress } from "../env.js";

export interface LaunchResult {
  /** 0 if every rank exited 0; else the failed rank's code (128+signal if killed), or 128+signal the launcher got. */
  exitCode: number;
  /** The rank whose failure ended the job, if one did. */
  failedRank?: number;
  jobId: string;
}

export interface LaunchIO {
  /** Where the ranks' prefixed output goes (default: this process's). */
  stdout?: Writable;
  stderr?: Writable;
  /** Environment the ranks inherit (default process.env). */
  env?: NodeJS.ProcessEnv;
}

interface Rank {
  rank: number;
  /** Host name for messages. */
  host: string;
  /** The host as the job names it (-H, the discovery script). */
  hostSlot: string;
  child: ChildProcess;
  /** The bridge `--bridge` started for it. */
  bridge?: RankBridge;
  /** The rank's own process has exited (or never started). */
  exited: boolean;
  /** Exited, and its output is all relayed. */
  done: boolean;
  /** Elastic: its bridge ended first (how), and whether the launcher then stopped the rank for it. */
  bridgeEnd?: { what: string; killedRank: boolean };
  closed: Promise<void>;
}

/** Signals that stop the job: each is forwarded to every rank, and the launcher exits 128+signal. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
/**
 * Run on a remote host before the rank's `env ... command`: takes the job token from stdin into the
 * environment. An agent that does not pass stdin on leaves it empty, and the rank's first
 * connection then fails saying the token is missing (rather than the rank not starting at all).
 */
const READ_TOKEN = ["sh", "-c", 'IFS= read -r UNICC_JOB_TOKEN; export UNICC_JOB_TOKEN; exec "$@"', "unicc-rank"];
/** How long removing a remote host's shared memory may take through the launch agent. */
const REMOTE_CLEANUP_MS = 5000;

const signalNumber = (sig: NodeJS.Signals) => constants.signals[sig] ?? 0;

/**
 * Failures the launcher learns of within this long of the first are taken as simultaneous: a rank
 * killed on another host (its exit comes through a launch agent) and the peers that report its
 * death reach the launcher in either order.
 */
const SIMULTANEOUS_MS = 250;

interface Failure {
  rank: Rank;
  exitCode: number;
  what: string;
  at: number;
  /** Killed by a signal this launcher did not send: directly, or as a shell's 128+n exit code. */
  killedFromOutside: boolean;
  /** The rank's bridge (--bridge) failed, not the rank's own process. */
  byBridge: boolean;
}

/**
 * The failure to name as the cause: the first, unless a rank (or bridge) was killed at the same
 * moment; a bridge that ended because its rank did is never the cause when the rank's exit is there.
 */
function causeOf(failures: Failure[]): Failure {
  const first = failures[0];
  const near = failures.filter((f) => f.at - first.at <= SIMULTANEOUS_MS);
  return near.find((f) => f.killedFromOutside) ?? near.find((f) => !f.byBridge) ?? first;
}

/** The job id every node of a --nnodes job derives alike from where they meet. */
function nodeJobId(node: NonNullable<LaunchOptions["node"]>): string {
  return createHash("sha256").update(`${node.masterAddr}:${node.masterPort}/${node.count}`).digest("hex").slice(0, 16);
}

/**
 * How long a rank's first contact may take: its bridge's first client, the first elastic round. A busy
 * machine can take minutes to start Python and a framework, and a rank that exits first ends it at once.
 */
function firstConnectMs(o: LaunchOptions): number {
  return o.elastic?.startTimeoutMs ?? Math.max(120, 2 * (o.timeoutS ?? DEFAULT_TIMEOUT_S) + 10) * 1000;
}

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

/** Signals the rank's whole process group (it was spawned detached, so it leads one). */
function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // the group is gone already
  }
}

/** Removes the job's /dev/shm/unicc-<job>-* here, and on the remote hosts through the agent (best effort). */
async function removeJobShm(jobId: string, remote: HostSlots[], agent: string): Promise<void> {
  const prefix = `unicc-${jobId}-`;
  try {
    for (const f of readdirSync("/dev/shm")) if (f.startsWith(prefix)) rmSync(`/dev/shm/${f}`, { force: true });
  } catch {
    // no /dev/shm on this system
  }
  await Promise.all(
    remote.map(
      (h) =>
        new Promise<void>((resolve) => {
          const argv = agentArgv(agent, h.name, ["sh", "-c", `rm -f /dev/shm/${prefix}*`]);
          const c = spawn(argv[0], argv.slice(1), { stdio: "ignore" });
          const timer = setTimeout(() => c.kill("SIGKILL"), REMOTE_CLEANUP_MS);
          const finish = () => {
            clearTimeout(timer);
            resolve();
          };
          c.once("error", finish);
          c.once("close", finish);
        }),
    ),
  );
}

/** An elastic job's membership in etcd, its failed writes reported (a rank would wait for them until its bound). */
function etcdMembership(etcd: EtcdStore, onError: (e: Error) => void): Pick<StoreServer, "put" | "watch"> {
  return { put: (key, value) => etcd.put(key, value, onError), watch: (prefix, fn) => etcd.watch(prefix, fn) };
}

/** Workers (by start number) beyond the slots the discovery script lists for their host, newest first. */
function unlisted(ranks: Rank[], found: HostSlots[]): number[] {
  const extra: number[] = [];
  for (const name of new Set(ranks.map((r) => r.hostSlot))) {
    const slots = found.find((h) => h.name === name)?.slots ?? 0;
    const live = ranks.filter((r) => r.hostSlot === name && !r.exited).map((r) => r.rank).sort((x, y) => y - x);
    extra.push(...live.slice(0, Math.max(0, live.length - slots)));
  }
  return extra;
}

/** An elastic job's first hosts from its discovery script: its first -np slots, else up to --max-np. */
async function firstHostsOfScript(e: ElasticLaunch): Promise<HostSlots[]> {
  let found: HostSlots[];
  try {
    found = await discoverHosts(e.discovery!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const slots = found.reduce((n, h) => n + h.slots, 0);
  if (slots < (e.startNp ?? e.minNp)) throw new UsageError(`${e.discovery!.name} offers ${slots} slots, fewer than the ${e.startNp ?? e.minNp} to start with`);
  return firstSlots(found, Math.min(e.startNp ?? e.maxNp, slots), "the discovered hosts");
}

/**
 * Runs a job: starts the rendezvous store and every rank, relays their output line by line with
 * a "[rank] " prefix, and ends the job as a whole. The first rank to fail (non-zero exit or a
 * signal), or SIGINT/SIGTERM/SIGHUP to this process, stops all the others: the signal to each
 * rank's process group, SIGKILL after the grace period (at once on a second signal). However it
 * ends, every process group it started is killed, the job's shared memory removed and the store
 * closed before it returns. Messages about the job go to `stderr`; throws UsageError on options
 * that make no sense.
 */
export async function launch(o: LaunchOptions, io: LaunchIO = {}): Promise<LaunchResult> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const baseEnv = io.env ?? process.env;
  const agent = o.launchAgent ?? DEFAULT_LAUNCH_AGENT;
  const graceMs = o.graceMs ?? DEFAULT_GRACE_MS;
  const runsHere = (h: HostSlots) => !o.agentForAll && isLocalHost(h.name);
  const node = o.node;
  // One of several launchers (--nnodes): every node must name the job and its secret alike.
  const jobId = node ? baseEnv.UNICC_JOB_ID || nodeJobId(node) : randomBytes(8).toString("hex");
  // Every connection of the job proves this secret; it reaches the ranks through their environment
  // (or, on other hosts, their stdin), never a command line that `ps` would show.
  const token = node ? baseEnv.UNICC_JOB_TOKEN ?? "" : randomBytes(32).toString("hex");
  if (node && !token)
    stderr.write("unicc run: no UNICC_JOB_TOKEN here: the nodes' connections are not authenticated (give every node the same secret)\n");
  if (!o.command.length) throw new UsageError("no command to run");
  const hosts = o.elastic?.hostsFromScript ? await firstHostsOfScript(o.elastic) : o.hosts;
  if (!hosts.length || hosts.some((h) => !Number.isInteger(h.slots) || h.slots < 1))
    throw new UsageError("every host needs a positive whole number of slots");
  // Found out here, a missing command is one clear line instead of every rank failing to start.
  if (o.bridge && !hosts.every(runsHere))
    throw new UsageError("--bridge starts bridges on this host only; run the launcher on each host");
  if (hosts.some(runsHere) && !commandExists(o.command[0], baseEnv.PATH)) {
    stderr.write(`unicc run: command not found: ${o.command[0]}\n`);
    return { exitCode: 127, jobId };
  }

  let addr = o.rendezvousAddr;
  if (!addr && o.networkInterface) {
    try {
      addr = interfaceAddress(o.networkInterface);
    } catch (e) {
      throw new UsageError((e as Error).message.replace(/^unicc: /, ""));
    }
  }
  addr ??= node ? node.masterAddr : defaultRendezvousAddr(hosts.map((h) => h.name));
  // With --nnodes, node 0's launcher hosts the store at the master address; the others use it.
  const store = !node || node.rank === 0 ? await StoreServer.listen(addr, node?.masterPort ?? 0, { token: token || undefined }) : undefined;
  const ranks: Rank[] = [];
  const failures: Failure[] = [];
  let runningAtFirstFailure: Rank[] = [];
  let signalled: NodeJS.Signals | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  const sent = new Set<number>(); // signal numbers this launcher sent to the ranks
  let membership: ElasticMembership | undefined;
  let membershipStore: EtcdStore | undefined;
  let elasticFailure: string | undefined;
  let stopDiscovery: (() => void) | undefined;

  const killAll = () => {
    sent.add(signalNumber("SIGKILL"));
    ranks.forEach((r) => !r.done && [r.child, r.bridge?.child].forEach((c) => signalGroup(c?.pid, "SIGKILL")));
  };
  const stopAll = (sig: NodeJS.Signals) => {
    sent.add(signalNumber(sig));
    ranks.forEach((r) => !r.done && [r.child, r.bridge?.child].forEach((c) => signalGroup(c?.pid, sig)));
    killTimer = setTimeout(killAll, graceMs);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    if (failures.length || signalled) return killAll(); // asked again: no more grace
    signalled = sig;
    stopAll(sig);
  };
  const onFailure = (rank: Rank, exitCode: number, what: string, byBridge = false) => {
    if (signalled) return; // a consequence of the stop
    const signal = exitCode > 128 && exitCode < 128 + 64 ? exitCode - 128 : 0;
    failures.push({ rank, exitCode, what, at: performance.now(), killedFromOutside: signal > 0 && !sent.has(signal), byBridge });
    if (failures.length > 1) return; // the others are kept only to pick the cause
    runningAtFirstFailure = ranks.filter((r) => !r.exited);
    stopAll("SIGTERM");
  };

  try {
    // A port of its own for torchrun-style code that binds MASTER_PORT itself (init_process_group).
    const masterPort = node ? node.masterPort + 1 : await freePort(addr);
    const slots = hosts.reduce((s, h) => s + h.slots, 0);
    const size = node ? node.count * slots : slots;
    const multiHost = hosts.length > 1 || !runsHere(hosts[0]);
    const storeAddr = `${addr.includes(":") ? `[${addr}]` : addr}:${node?.masterPort ?? store!.port}`;
    // A remote shell does not inherit this environment: pass the user's UNICC_* settings along
    // (on its command line, so not the token: that one goes through stdin).
    const unicc = Object.entries(baseEnv).filter(
      (e): e is [string, string] => e[0].startsWith("UNICC_") && e[0] !== "UNICC_JOB_TOKEN" && e[1] !== undefined,
    );

    const startRank = (host: HostSlots, rank: number, localRank: number, localSize: number, elasticId?: string): Rank => {
      const local = runsHere(host);
      const env: Record<string, string> = {
        UNICC_RANK: String(rank),
        UNICC_SIZE: String(Math.max(size, rank + 1)),
        UNICC_LOCAL_RANK: String(localRank),
        UNICC_LOCAL_SIZE: String(localSize),
        UNICC_STORE_ADDR: storeAddr,
        ...(o.networkInterface ? { UNICC_NETWORK_INTERFACE: o.networkInterface } : {}),
        ...(o.rendezvous ? { UNICC_RENDEZVOUS: o.rendezvous } : {}),
        UNICC_JOB_ID: jobId,
        UNICC_JOB_TOKEN: token,
        // Elastic: every worker names its host, so that newcomers and survivors group alike.
        ...(multiHost || elasticId !== undefined ? { UNICC_HOST_ID: host.name } : {}),
        ...(elasticId !== undefined ? { UNICC_ELASTIC_ID: elasticId } : {}),
        ...(o.timeoutS ? { UNICC_TIMEOUT_S: String(o.timeoutS) } : {}),
        RANK: String(rank),
        WORLD_SIZE: String(Math.max(size, rank + 1)),
        LOCAL_RANK: String(localRank),
        LOCAL_WORLD_SIZE: String(localSize),
        MASTER_ADDR: addr,
        MASTER_PORT: String(masterPort),
      };
      const bridge = o.bridge && local ? startBridge({ dir: o.bridgeDir ?? DEFAULT_BRIDGE_DIR, jobId, rank }, { ...baseEnv, ...env }, { stdout, stderr }, firstConnectMs(o)) : undefined;
      Object.assign(env, bridge?.env);
      const { UNICC_JOB_TOKEN: _secret, ...visible } = env;
      const argv = local
        ? o.command
        : agentArgv(agent, host.name, [
            ...READ_TOKEN,
            "env",
            ...[...unicc, ...Object.entries(visible)].map(([k, v]) => `${k}=${v}`),
            ...o.command,
          ]);
      const child = spawn(argv[0], argv.slice(1), {
        env: { ...baseEnv, ...env },
        stdio: [local ? "ignore" : "pipe", "pipe", "pipe"],
        detached: true, // leads its own process group, so stopping it reaches whatever it started
      });
      if (child.stdin) {
        child.stdin.on("error", () => {}); // a rank that dies at once fails through "exit" below
        child.stdin.end(`${token}\n`);
      }
      const r: Rank = { rank, host: local ? hostname() : host.name, hostSlot: host.name, child, bridge, exited: false, done: false, closed: Promise.resolve() };
      let abandoned = false;
      bridge?.child.on("exit", (code, signal) => {
        if (abandoned || (!signal && code === 0)) return;
        const what = `lost its bridge (pid ${bridge.child.pid}), which ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`;
        if (elasticId === undefined) return onFailure(r, signal ? 128 + signalNumber(signal) : code ?? 1, what, true);
        // Elastic: the worker cannot go on without its bridge and goes too, unless its own end is
        // on the way (a rank's death ends its bridge a moment later, and is the one to name).
        r.bridgeEnd = { what, killedRank: false };
        setTimeout(() => {
          if (r.exited) return;
          r.bridgeEnd!.killedRank = true;
          signalGroup(child.pid, "SIGKILL");
        }, SIMULTANEOUS_MS);
      });
      // Elastic workers keep the number they started with as their output prefix.
      const prefix = `[${rank}] `;
      const output = Promise.all([
        child.stdout && relayLines(child.stdout, stdout, prefix),
        child.stderr && relayLines(child.stderr, stderr, prefix),
      ]);
      child.on("error", (e) => {
        if (child.pid !== undefined || r.exited) return; // only a failed start matters here
        r.exited = true;
        if (elasticId !== undefined) membership?.exited(elasticId, false, `could not be started (${e.message})`);
        else onFailure(r, 127, `could not be started (${e.message})`);
      });
      child.on("exit", (code, signal) => {
        r.exited = true;
        // A rank that never connected (it failed first, or does not use unicc) leaves its bridge
        // waiting for nobody: it goes now, and is not a failure of its own.
        if (bridge?.unclaimed()) {
          abandoned = true;
          signalGroup(bridge.child.pid, "SIGKILL");
        }
        const what = signal ? `was killed by ${signal}` : `exited with code ${code}`;
        if (elasticId !== undefined) {
          // The job goes on without this worker: its bridge goes with it, and what they left.
          if (bridge && (signal || code !== 0)) {
            abandoned = true;
            signalGroup(bridge.child.pid, "SIGKILL");
            removeBridgeFiles(o.bridgeDir ?? DEFAULT_BRIDGE_DIR, jobId, rank);
          }
          const end = r.bridgeEnd;
          membership?.exited(elasticId, code === 0, end && (end.killedRank || !signal) ? end.what : what);
        } else if (signal) onFailure(r, 128 + signalNumber(signal), what);
        else if (code !== 0) onFailure(r, code ?? 1, what);
      });
      r.closed = new Promise((resolve) =>
        child.once("close", () =>
          Promise.all([output, bridge?.closed]).then(() => {
            r.done = true;
            resolve();
          }),
        ),
      );
      ranks.push(r);
      membership?.added({ id: elasticId ?? "", host: host.name, pid: child.pid, kill: () => signalGroup(child.pid, "SIGKILL") });
      return r;
    };

    for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
    if (o.elastic) {
      // With --rendezvous the ranks meet in etcd, so the membership is kept there too.
      membershipStore = o.rendezvous
        ? await EtcdStore.connect(o.rendezvous, { timeoutMs: (o.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000, ttlS: o.timeoutS ?? DEFAULT_TIMEOUT_S, jobId })
        : undefined;
      membership = new ElasticMembership(o.elastic, {
        store: membershipStore ? etcdMembership(membershipStore, (e) => stderr.write(`unicc run: ${e.message}\n`)) : store!,
        roundMs: (o.timeoutS ?? DEFAULT_TIMEOUT_S) * 1000,
        startMs: firstConnectMs(o),
        log: (line) => stderr.write(`${line}\n`),
        fail: (message) => {
          elasticFailure = message;
          if (!signalled) stopAll("SIGTERM");
        },
      });
    }
    let rank = node ? node.rank * slots : 0;
    for (const host of hosts)
      for (let localRank = 0; localRank < host.slots; localRank++, rank++)
        startRank(host, rank, localRank, host.slots, o.elastic ? String(rank) : undefined);
    if (o.elastic?.discovery) {
      const elastic = o.elastic;
      const discovery = o.elastic.discovery;
      let nextId = rank;
      const bridgeless = new Set<string>(); // hosts of the script's where --bridge cannot start ranks
      stopDiscovery = pollHosts(
        discovery,
        elastic.discoveryIntervalMs,
        (found) => {
          if (signalled || elasticFailure || !membership?.accepting) return;
          membership.remove(unlisted(ranks, found).map(String));
          for (const h of found) {
            if (o.bridge && !runsHere(h)) {
              if (!bridgeless.has(h.name)) stderr.write(`unicc run: --bridge starts bridges on this host only: not starting ranks on ${h.name}\n`);
              bridgeless.add(h.name);
              continue;
            }
            const here = ranks.filter((r) => r.hostSlot === h.name && !r.exited).length;
            const room = Math.min(h.slots - here, elastic.maxNp - membership.live);
            for (let i = 0; i < room; i++) startRank(h, nextId, here + i, h.slots, String(nextId++));
          }
        },
        (e) => stderr.write(`unicc run: ${e.message}\n`),
      );
    }
    // Elastic jobs start ranks while they run: wait until none is left.
    while (ranks.some((r) => !r.done)) await Promise.all(ranks.map((r) => r.closed));
  } finally {
    stopDiscovery?.();
    membership?.close();
    membershipStore?.close();
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    clearTimeout(killTimer);
    // Whatever the ranks left running in their groups goes too.
    for (const r of ranks) [r.child, r.bridge?.child].forEach((c) => signalGroup(c?.pid, "SIGKILL"));
    if (o.bridge) removeBridgeFiles(o.bridgeDir ?? DEFAULT_BRIDGE_DIR, jobId);
    const remote = [...new Set(ranks.map((r) => r.hostSlot))].map((name) => ({ name, slots: 1 })).filter((h) => !runsHere(h));
    await removeJobShm(jobId, remote, agent);
    await store?.close();
  }

  if (elasticFailure) {
    stderr.write(`${elasticFailure}\n`);
    return { exitCode: 1, jobId };
  }
  if (failures.length) {
    const cause = causeOf(failures);
    const { rank: r, exitCode, what } = cause;
    const where = `host ${r.host}${r.child.pid ? `, pid ${r.child.pid}` : ""}`;
    const before = cause === failures[0] ? "" : `; rank ${failures[0].rank.rank} ${failures[0].what} at the same moment`;
    const stopped = runningAtFirstFailure.filter((x) => x !== r).length;
    const others = stopped ? `; stopped the other ${stopped} rank${stopped === 1 ? "" : "s"}` : "";
    stderr.write(`unicc: rank ${r.rank} (${where}) ${what} first${before}${others}\n`);
    return { exitCode, failedRank: r.rank, jobId };
  }
  if (signalled) {
    stderr.write(`unicc: ${signalled} received; stopped all ${ranks.length} ranks\n`);
    return { exitCode: 128 + signalNumber(signalled), jobId };
  }
  return { exitCode: 0, jobId };
}
