import { readFileSync } from "node:fs";

export interface HostSlots {
  name: string;
  slots: number;
}

export interface LaunchOptions {
  command: string[];
  /** Hosts in rank order; a host named localhost (or this machine) runs its ranks directly. */
  hosts: HostSlots[];
  /** How to run a command on another host; {host} is replaced by its name. */
  launchAgent: string;
  /** Address the rendezvous store listens on; every host must reach it. */
  rendezvousAddr?: string;
  timeoutS?: number;
  /** How long ranks get between SIGTERM and SIGKILL when the job is stopped. */
  graceMs: number;
}

export class UsageError extends Error {}

export const USAGE = `usage: unicc run [options] [--] <command...>

  -np, --nproc N          ranks on this host
  -H, --hosts H:S,...     ranks on several hosts (S slots each, ranks numbered host by host)
  --hostfile FILE         hosts from a file: lines "host slots=S" or "host:S"
  --launch-agent CMD      how to start ranks on other hosts, {host} replaced (default "ssh {host}")
  --rendezvous-addr IP    address the rendezvous store listens on (default 127.0.0.1 for one host)
  --timeout S             seconds a collective may wait without progress (UNICC_TIMEOUT_S)
  --grace S               seconds between SIGTERM and SIGKILL when stopping ranks (default 5)
`;

function positiveInt(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 1) throw new UsageError(`${flag} needs a positive integer, got '${v ?? ""}'`);
  return n;
}

export function parseHosts(spec: string): HostSlots[] {
  return spec.split(",").filter(Boolean).map((item) => {
    const m = /^([^:\s]+):(\d+)$/.exec(item.trim());
    if (!m || Number(m[2]) < 1) throw new UsageError(`bad host '${item}': expected host:slots, e.g. node1:4`);
    return { name: m[1], slots: Number(m[2]) };
  });
}

export function parseHostfile(path: string): HostSlots[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read hostfile ${path}: ${(e as Error).message}`);
  }
  return text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean).map((line) => {
    const m = /^(\S+)\s+slots=(\d+)$/.exec(line) ?? /^([^:\s]+):(\d+)$/.exec(line);
    if (!m || Number(m[2]) < 1) throw new UsageError(`bad hostfile line '${line}': expected "host slots=N" or "host:N"`);
    return { name: m[1], slots: Number(m[2]) };
  });
}

export function parseRunArgs(argv: string[]): LaunchOptions {
  const o: LaunchOptions = { command: [], hosts: [], launchAgent: "ssh {host}", graceMs: 5000 };
  let np: number | undefined;
  let i = 0;
  const value = (flag: string) => {
    if (i + 1 >= argv.length) throw new UsageError(`${flag} needs a value`);
    return argv[++i];
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") { i++; break; }
    if (a === "-np" || a === "-n" || a === "--nproc") np = positiveInt(a, value(a));
    else if (a === "-H" || a === "--hosts") o.hosts.push(...parseHosts(value(a)));
    else if (a === "--hostfile") o.hosts.push(...parseHostfile(value(a)));
    else if (a === "--launch-agent") o.launchAgent = value(a);
    else if (a === "--rendezvous-addr") o.rendezvousAddr = value(a);
    else if (a === "--timeout") o.timeoutS = positiveInt(a, value(a));
    else if (a === "--grace") o.graceMs = Number(value(a)) * 1000;
    else if (a.startsWith("-") && o.command.length === 0) throw new UsageError(`unknown option '${a}'`);
    else break;
  }
  o.command = argv.slice(i);
  if (o.command.length === 0) throw new UsageError("no command to run");
  if (!Number.isFinite(o.graceMs) || o.graceMs < 0) throw new UsageError("--grace needs a number of seconds");
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
