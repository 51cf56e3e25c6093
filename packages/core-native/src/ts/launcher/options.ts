import { readFileSync } from "node:fs";

import { newLauncherCommand, parseCommand, UsageError, wholeNumber } from "../cli-options.js";
import type { HostDiscovery } from "./discovery.js";
import { RAY_DISCOVERY_INTERVAL_MS, raySlots } from "./ray.js";

export { UsageError };

export interface HostSlots {
  name: string;
  slots: number;
}

export interface LaunchOptions {
  command: string[];
  /** Hosts in rank order; localhost, 127.0.0.1, ::1 or this machine's hostname run ranks directly. */
  hosts: HostSlots[];
  /** How to run a command on another host, split on spaces; {host} is replaced (default "ssh {host}"). */
  launchAgent?: string;
  /** Address the rendezvous store listens on; every host must reach it. */
  rendezvousAddr?: string;
  /** etcd://HOST:PORT/PREFIX: the ranks meet in etcd instead of the launcher's store (UNICC_RENDEZVOUS). */
  rendezvous?: string;
  /** Interface every rank listens on and is reached at (UNICC_NETWORK_INTERFACE for the ranks). */
  networkInterface?: string;
  /** UNICC_TIMEOUT_S for the ranks. */
  timeoutS?: number;
  /** How long ranks get between SIGTERM and SIGKILL when the job is stopped (default 5000). */
  graceMs?: number;
  /** The launcher starts each rank's bridge and passes its address (UNICC_BRIDGE_SOCKET). */
  bridge?: boolean;
  /** Where bridge sockets and slabs live, shared with the ranks (default /dev/shm). */
  bridgeDir?: string;
  /** One of `count` launchers, one per node, as torchrun's --nnodes: this one starts its hosts' ranks
   * from rank*slots on, and node 0's hosts the store at masterAddr:masterPort. */
  node?: { count: number; rank: number; masterAddr: string; masterPort: number };
  /** Start every rank through the launch agent, this machine's too (srun: every rank a job step). */
  agentForAll?: boolean;
  /** --min-np/--max-np: ranks that die do not end the job while minNp remain (launcher/elastic.ts). */
  elastic?: ElasticLaunch;
}

export interface ElasticLaunch {
  minNp: number;
  maxNp: number;
  /** Prints "host:slots" lines; polled every discoveryIntervalMs, new slots get ranks. */
  discovery?: HostDiscovery;
  discoveryIntervalMs: number;
  /** --start-timeout: how long the first generation waits for every worker it started to connect. */
  startTimeoutMs?: number;
  /** No -H/--hostfile: the first hosts are the script's (the first startNp slots, else up to maxNp). */
  hostsFromScript: boolean;
  /** -np as given. */
  startNp?: number;
}

/** An allocation `unicc run --slurm` asks for. */
export interface SlurmRequest {
  nodes: number;
  tasksPerNode: number;
  partition?: string;
}

/** What `unicc run`'s arguments ask for: the launch, and where its hosts come from. */
export interface RunArgs extends LaunchOptions {
  /** -np as given (the hosts already hold it, unless they come from Slurm). */
  np?: number;
  /** -H or --hostfile was given: never take the hosts from a Slurm allocation. */
  hostsGiven: boolean;
  /** --slurm: ask Slurm for this allocation, run on it, release it. */
  slurm?: SlurmRequest;
  /** --ray: the Ray cluster's address (its nodes are the hosts, even inside a Slurm allocation). */
  ray?: string;
}

export const DEFAULT_LAUNCH_AGENT = "ssh {host}";
export const DEFAULT_GRACE_MS = 5000;

/** `--help` among the options. */
export class HelpRequested extends Error {}

export const USAGE = `usage: unicc run [options] [--] <command...>

  -np, --nproc N          N ranks on this host
  -H, --hosts H:S,...     ranks on several hosts, S slots each, numbered host by host
                          (with -np N: the first N slots)
  --hostfile FILE         hosts from a file, one per line: "host slots=S" or "host:S" (# comments)
  --launch-agent CMD      how to start ranks on other hosts, {host} replaced (default "ssh {host}");
                          e.g. "ip netns exec {host}" or "docker exec {host}"
  --rendezvous-addr IP    address the rendezvous store listens on (default 127.0.0.1 when all
                          ranks are local, else this machine's first non-loopback IPv4 address)
  --rendezvous URL        etcd://HOST:PORT/PREFIX: ranks meet in etcd (keys on leases, so a dead
                          rank's expire) instead of the store this launcher hosts
  --network-interface IF  ranks listen on, and are reached at, this interface's address only
                          (each host's own; sets UNICC_NETWORK_INTERFACE); the store too, unless
                          --rendezvous-addr says otherwise
  --timeout S             seconds a collective may wait without progress (sets UNICC_TIMEOUT_S)
  --grace S               seconds between SIGTERM and SIGKILL when stopping ranks (default 5)
  --bridge                start each rank's bridge here and pass its address to the rank
                          (UNICC_BRIDGE_SOCKET), for Python ranks in a chroot or container that
                          cannot run Node; they must see the bridge folder at the same path
  --bridge-dir DIR        the folder for bridge sockets and tensor slabs (default /dev/shm;
                          implies --bridge)
  --slurm                 ask Slurm for an allocation (--nodes, --ntasks-per-node, --partition),
                          run on it, and release it when the job ends; inside an allocation
                          (salloc, sbatch) ranks start on its nodes with srun without this flag
  --nodes N, --ntasks-per-node M, --partition P   the allocation --slurm asks for
  --min-np A, --max-np B  elastic job: a rank that dies does not end the job while A remain;
                          the others re-form the world at the new size (unicc.elastic.run)
                          and it grows up to B ranks onto slots the discovery script adds
  --host-discovery-script S
                          elastic job: S prints the hosts, one "host:slots" a line; run every
                          --discovery-interval seconds (default 1); without -H/--hostfile the
                          job starts on its first answer
  --ray HOST:PORT         elastic job on a Ray cluster: its live nodes' CPUs are the slots (asked
                          every --discovery-interval, default 2 s) and each rank runs as a Ray
                          actor on its node (UNICC_RAY_PYTHON: a Python with ray and unicc)
  --start-timeout S       elastic job: how long the first generation waits for every started
                          rank to connect (default 120 or 2 x --timeout + 10, whichever is
                          longer); the ranks still missing then are stopped and named. A
                          --bridge rank's bridge waits as long for its client
  --nnodes N --node-rank K --master-addr A --master-port P
                          one launcher per node, as torchrun's: this node's -np ranks are
                          K*np..; node 0 hosts the store at A:P; every node needs the same
                          UNICC_JOB_TOKEN (unicc k8s manifests give it to their pods)
  -h, --help              this text
`;


function hostSlots(m: RegExpExecArray | null, problem: string): HostSlots {
  if (!m || Number(m[2]) < 1) throw new UsageError(problem);
  return { name: m[1], slots: Number(m[2]) };
}

const HOST_COLON_SLOTS = /^([^\s:]+):(\d+)$/;

export function parseHosts(spec: string): HostSlots[] {
  const hosts = spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item) => hostSlots(HOST_COLON_SLOTS.exec(item), `bad host '${item}': expected host:slots, e.g. node1:4`));
  if (!hosts.length) throw new UsageError(`-H needs at least one host:slots, got '${spec}'`);
  return hosts;
}

export function parseHostfile(path: string): HostSlots[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read hostfile ${path}: ${(e as Error).message}`);
  }
  const hosts = text
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean)
    .map((line) =>
      hostSlots(
        /^(\S+)\s+slots=(\d+)$/.exec(line) ?? HOST_COLON_SLOTS.exec(line),
        `bad line '${line}' in hostfile ${path}: expected "host slots=N" or "host:N"`,
      ),
    );
  if (!hosts.length) throw new UsageError(`hostfile ${path} names no host`);
  return hosts;
}

/** Parses the arguments after `unicc run`. Throws UsageError on bad input, HelpRequested on --help. */
export function parseRunArgs(argv: string[]): RunArgs {
  const o: RunArgs = { command: [], hosts: [], launchAgent: DEFAULT_LAUNCH_AGENT, graceMs: DEFAULT_GRACE_MS, hostsGiven: false };
  let np: number | undefined;
  const want: Partial<SlurmRequest> = {};
  const node: Partial<NonNullable<LaunchOptions["node"]>> = {};
  const elastic: ElasticArgs = {};
  const named = (flag: string, what: string) => (v: string) => {
    if (!v.trim()) throw new UsageError(`${flag} needs ${what}`);
    return v.trim();
  };
  // Each option's function runs as the option is met, in order (-H and --hostfile add up in turn).
  const cmd = newLauncherCommand("unicc run")
    .option("-n, --nproc <N>", "", (v) => void (np = wholeNumber("-np", v, 1)))
    .option("-H, --hosts <H:S,...>", "", (v) => void o.hosts.push(...parseHosts(v)))
    .option("--hostfile <FILE>", "", (v) => void o.hosts.push(...parseHostfile(v)))
    .option("--launch-agent <CMD>", "", (v) => void (o.launchAgent = named("--launch-agent", "a command, e.g. 'ssh {host}'")(v)))
    .option("--rendezvous-addr <IP>", "", (v) => void (o.rendezvousAddr = named("--rendezvous-addr", "an address")(v)))
    .option("--rendezvous <URL>", "", (v) => {
      o.rendezvous = v.trim();
      if (!/^etcd:\/\//.test(o.rendezvous)) throw new UsageError(`--rendezvous takes etcd://HOST:PORT/PREFIX, got '${o.rendezvous}'`);
    })
    .option("--network-interface <IF>", "", (v) => void (o.networkInterface = named("--network-interface", "an interface name, e.g. eth0")(v)))
    .option("--timeout <S>", "", (v) => void (o.timeoutS = wholeNumber("--timeout", v, 1)))
    .option("--slurm")
    .option("--nodes <N>", "", (v) => void (want.nodes = wholeNumber("--nodes", v, 1)))
    .option("--ntasks-per-node <M>", "", (v) => void (want.tasksPerNode = wholeNumber("--ntasks-per-node", v, 1)))
    .option("--partition <P>", "", (v) => void (want.partition = v.trim()))
    .option("--nnodes <N>", "", (v) => void (node.count = wholeNumber("--nnodes", v, 1)))
    .option("--node-rank <K>", "", (v) => void (node.rank = wholeNumber("--node-rank", v, 0)))
    .option("--master-addr <A>", "", (v) => void (node.masterAddr = v.trim()))
    .option("--master-port <P>", "", (v) => void (node.masterPort = wholeNumber("--master-port", v, 1)))
    .option("--min-np <A>", "", (v) => void (elastic.minNp = wholeNumber("--min-np", v, 1)))
    .option("--max-np <B>", "", (v) => void (elastic.maxNp = wholeNumber("--max-np", v, 1)))
    .option("--host-discovery-script <S>", "", (v) => void (elastic.discoveryScript = named("--host-discovery-script", "a program")(v)))
    .option("--discovery-interval <S>", "", (v) => void (elastic.discoveryIntervalMs = positiveSeconds("--discovery-interval", v) * 1000))
    .option("--ray <HOST:PORT>", "", (v) => void (elastic.ray = named("--ray", "the Ray cluster's HOST:PORT")(v)))
    .option("--start-timeout <S>", "", (v) => void (elastic.startTimeoutMs = positiveSeconds("--start-timeout", v) * 1000))
    .option("--grace <S>", "", (v) => {
      const s = Number(v);
      if (v.trim() === "" || !Number.isFinite(s) || s < 0) throw new UsageError(`--grace needs a number of seconds, got '${v}'`);
      o.graceMs = s * 1000;
    })
    .option("--bridge")
    .option("--bridge-dir <DIR>", "", (v) => {
      o.bridge = true;
      o.bridgeDir = v.trim();
      if (!o.bridgeDir.startsWith("/")) throw new UsageError(`--bridge-dir needs an absolute folder, got '${o.bridgeDir}'`);
    });
  const { opts, operands } = parseCommand(cmd, argv, { "-np": "-n" });
  if (opts.help) throw new HelpRequested();
  if (opts.bridge) o.bridge = true;
  const slurm = opts.slurm === true;
  o.command = operands;
  if (!o.command.length) throw new UsageError("no command to run");

  const seen = new Set<string>();
  for (const h of o.hosts) {
    if (seen.has(h.name)) throw new UsageError(`host '${h.name}' is given twice; give it once with all its slots`);
    seen.add(h.name);
  }
  o.np = np;
  o.hostsGiven = o.hosts.length > 0;
  if (slurm) {
    if (o.hostsGiven) throw new UsageError("--slurm takes its hosts from the allocation; drop -H/--hostfile");
    if (!want.nodes || !want.tasksPerNode) throw new UsageError("--slurm needs --nodes N and --ntasks-per-node M");
    o.slurm = want as SlurmRequest;
  } else if (Object.keys(want).length) {
    throw new UsageError("--nodes, --ntasks-per-node and --partition go with --slurm");
  }
  if (Object.keys(node).length) o.node = nodeOptions(node, o);
  if (Object.keys(elastic).length) o.elastic = elasticOptions(elastic, o, np);
  if (np !== undefined && o.hosts.length) o.hosts = firstSlots(o.hosts, np, "the hosts given");
  if (!o.hosts.length) o.hosts = [{ name: "localhost", slots: np ?? 1 }];
  return o;
}

function nodeOptions(node: Partial<NonNullable<LaunchOptions["node"]>>, o: RunArgs): NonNullable<LaunchOptions["node"]> {
  const { count, rank, masterAddr, masterPort } = node;
  if (count === undefined || rank === undefined || !masterAddr || masterPort === undefined)
    throw new UsageError("--nnodes, --node-rank, --master-addr and --master-port go together");
  if (rank >= count) throw new UsageError(`--node-rank ${rank} must be below --nnodes ${count}`);
  if (masterPort > 65534) throw new UsageError("--master-port must be below 65535 (the next port is MASTER_PORT for torch)");
  if (o.hostsGiven || o.slurm) throw new UsageError("--nnodes runs this node's ranks only: drop -H/--hostfile/--slurm");
  return { count, rank, masterAddr, masterPort };
}

function positiveSeconds(flag: string, v: string): number {
  const s = Number(v);
  if (v.trim() === "" || !Number.isFinite(s) || s <= 0) throw new UsageError(`${flag} needs a positive number of seconds, got '${v}'`);
  return s;
}

type ElasticArgs = {
  minNp?: number; maxNp?: number; discoveryScript?: string; discovery?: HostDiscovery; discoveryIntervalMs?: number; startTimeoutMs?: number; ray?: string;
};

function elasticOptions(
  e: ElasticArgs,
  o: RunArgs,
  np: number | undefined,
): ElasticLaunch {
  const slots = o.hosts.reduce((s, h) => s + h.slots, 0);
  const start = np ?? (o.hostsGiven ? slots : undefined);
  if (e.ray) {
    if (e.minNp === undefined && e.maxNp === undefined) throw new UsageError("--ray goes with --min-np/--max-np");
    if (e.discoveryScript || o.hostsGiven || o.slurm) throw new UsageError("--ray takes its hosts from the Ray cluster; drop -H/--hostfile/--host-discovery-script/--slurm");
    const ray = raySlots(e.ray, process.env);
    Object.assign(o, { launchAgent: ray.launchAgent, agentForAll: true, ray: e.ray });
    Object.assign(e, { discovery: ray.discovery, discoveryIntervalMs: e.discoveryIntervalMs ?? RAY_DISCOVERY_INTERVAL_MS });
  } else if (e.discoveryScript) {
    e.discovery = { command: e.discoveryScript, args: [], name: `--host-discovery-script ${e.discoveryScript}` };
  }
  const minNp = e.minNp ?? 1;
  const maxNp = e.maxNp ?? (e.discovery ? Number.MAX_SAFE_INTEGER : start ?? minNp);
  if (minNp > maxNp) throw new UsageError(`--min-np ${minNp} is more than --max-np ${maxNp}`);
  if (start !== undefined && (start < minNp || start > maxNp))
    throw new UsageError(`the job starts with ${start} ranks, outside --min-np ${minNp} .. --max-np ${maxNp}`);
  if (e.startTimeoutMs !== undefined && Object.keys(e).length === 1) throw new UsageError("--start-timeout goes with --min-np/--max-np");
  if (e.discoveryIntervalMs !== undefined && !e.discovery) throw new UsageError("--discovery-interval goes with --host-discovery-script");
  if (o.node) throw new UsageError("--min-np/--max-np work with -np, -H, --hostfile, --host-discovery-script, --ray and Slurm only (not --nnodes)");
  if (o.slurm && e.discoveryScript) throw new UsageError("--host-discovery-script does not go with --slurm: the allocation's nodes are the hosts");
  return {
    minNp,
    maxNp,
    discovery: e.discovery,
    discoveryIntervalMs: e.discoveryIntervalMs ?? 1000,
    startTimeoutMs: e.startTimeoutMs,
    hostsFromScript: !!e.discovery && !o.hostsGiven,
    startNp: np,
  };
}

/** The hosts filled in order up to np ranks, as mpirun does. */
export function firstSlots(hosts: HostSlots[], np: number, what: string): HostSlots[] {
  const slots = hosts.reduce((s, h) => s + h.slots, 0);
  if (np > slots) throw new UsageError(`-np ${np} is more than the ${slots} slots of ${what}`);
  let left = np;
  return hosts.flatMap((h) => {
    const take = Math.min(h.slots, left);
    left -= take;
    return take > 0 ? [{ ...h, slots: take }] : [];
  });
}
