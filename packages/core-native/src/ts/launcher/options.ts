import { readFileSync } from "node:fs";

import { UsageError, walkOptions, wholeNumber } from "../cli-options.js";

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
                          e.g. "ip netns exec {host}"
  --rendezvous-addr IP    address the rendezvous store listens on (default 127.0.0.1 when all
                          ranks are local, else this machine's first non-loopback IPv4 address)
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
export function parseRunArgs(argv: string[]): LaunchOptions {
  const o: LaunchOptions = { command: [], hosts: [], launchAgent: DEFAULT_LAUNCH_AGENT, graceMs: DEFAULT_GRACE_MS };
  let np: number | undefined;
  let end = walkOptions(argv, (flag, value, arg) => {
    if (arg === "--" || !arg.startsWith("-")) return "stop"; // the command starts here
    switch (flag) {
      case "-h":
      case "--help":
        throw new HelpRequested();
      case "-np":
      case "-n":
      case "--nproc":
        np = wholeNumber(flag, value(), 1);
        break;
      case "-H":
      case "--hosts":
        o.hosts.push(...parseHosts(value()));
        break;
      case "--hostfile":
        o.hosts.push(...parseHostfile(value()));
        break;
      case "--launch-agent":
        o.launchAgent = value().trim();
        if (!o.launchAgent) throw new UsageError("--launch-agent needs a command, e.g. 'ssh {host}'");
        break;
      case "--rendezvous-addr":
        o.rendezvousAddr = value().trim();
        if (!o.rendezvousAddr) throw new UsageError("--rendezvous-addr needs an address");
        break;
      case "--network-interface":
        o.networkInterface = value().trim();
        if (!o.networkInterface) throw new UsageError("--network-interface needs an interface name, e.g. eth0");
        break;
      case "--timeout":
        o.timeoutS = wholeNumber(flag, value(), 1);
        break;
      case "--grace": {
        const v = value();
        const s = Number(v);
        if (v.trim() === "" || !Number.isFinite(s) || s < 0) throw new UsageError(`--grace needs a number of seconds, got '${v}'`);
        o.graceMs = s * 1000;
        break;
      }
      case "--bridge":
        o.bridge = true;
        break;
      case "--bridge-dir":
        o.bridge = true;
        o.bridgeDir = value().trim();
        if (!o.bridgeDir.startsWith("/")) throw new UsageError(`--bridge-dir needs an absolute folder, got '${o.bridgeDir}'`);
        break;
      default:
        throw new UsageError(`unknown option '${arg}'`);
    }
  });
  if (argv[end] === "--") end++;
  o.command = argv.slice(end);
  if (!o.command.length) throw new UsageError("no command to run");

  const seen = new Set<string>();
  for (const h of o.hosts) {
    if (seen.has(h.name)) throw new UsageError(`host '${h.name}' is given twice; give it once with all its slots`);
    seen.add(h.name);
  }
  if (np !== undefined && o.hosts.length) {
    const slots = o.hosts.reduce((s, h) => s + h.slots, 0);
    if (np > slots) throw new UsageError(`-np ${np} is more than the ${slots} slots of the hosts given`);
    // Fill hosts in order up to np ranks, as mpirun does.
    let left = np;
    o.hosts = o.hosts.flatMap((h) => {
      const take = Math.min(h.slots, left);
      left -= take;
      return take > 0 ? [{ ...h, slots: take }] : [];
    });
  }
  if (!o.hosts.length) o.hosts = [{ name: "localhost", slots: np ?? 1 }];
  return o;
}
