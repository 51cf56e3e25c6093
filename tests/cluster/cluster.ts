// Emulated cluster for tests and benchmarks: H hosts, each a whole machine (own network namespace,
// hostname and /dev/shm), behind one shaped switch. All setup and teardown lives in cluster.sh (also the human CLI); this module runs it
// with argv arrays (never through a shell) and adds the per-host process spawner.
import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./cluster.sh", import.meta.url));
export const LAUNCH_AGENT = `bash ${SCRIPT} enter {host}`;

export interface ClusterOptions {
  /** Number of emulated hosts (namespaces uc-<tag>-h0 ..). */
  hosts: number;
  /** Link rate of every host, each direction, Mbit/s. Default 2000. */
  rateMbit?: number;
  /** Cap per TCP flow on a host's egress, Mbit/s; 0 = none. Default 600. */
  perFlowMbit?: number;
  /** [a-z0-9]{1,12}; names the namespaces. Default: random. An existing cluster with it is replaced. */
  tag?: string;
  /** Give every host this hostname (as machines cloned from one image have); default: its name. */
  sameHostname?: string;
}

export interface ClusterHost {
  /** Network namespace name; also the host name given to `unicc run -H`. */
  name: string;
  /** The host's only address (on its eth0). */
  addr: string;
  /** What `hostname` says on it. */
  hostname: string;
}

export interface Cluster {
  tag: string;
  hosts: ClusterHost[];
  /** Address of the root namespace on the cluster's subnet, reachable from every host. */
  rootAddr: string;
  rateMbit: number;
  perFlowMbit: number;
  /** Spawns argv "on" that host: in its network, UTS and mount namespaces (its own /dev/shm). */
  exec(hostIndex: number, argv: string[], opts?: SpawnOptions): ChildProcess;
  /** `unicc run --launch-agent` value that starts ranks on these hosts ({host} = a host's name). */
  launchAgent: string;
  /** Takes the host's switch port down: its traffic silently vanishes (no fast errors). */
  cutLink(hostIndex: number): Promise<void>;
  /** Undoes cutLink. */
  restoreLink(hostIndex: number): Promise<void>;
  /** Removes the namespaces and links, killing processes still running on the hosts. Idempotent. */
  down(): Promise<void>;
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("bash", [SCRIPT, ...args], (err, stdout, stderr) => {
      if (err) reject(new Error(`cluster.sh ${args.join(" ")}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

// Tags still up in this process; torn down at exit so that a test that dies before its afterAll
// does not leave namespaces behind. Death by a signal skips this; for that, `up -o` records this
// process as the owner and the next `up` of any tag reaps clusters whose owner is gone.
const live = new Set<string>();
process.on("exit", () => {
  for (const tag of live) spawnSync("bash", [SCRIPT, "down", tag], { stdio: "ignore" });
});

export async function up(opts: ClusterOptions): Promise<Cluster> {
  const args = ["up", "-n", String(opts.hosts), "-o", String(process.pid)];
  if (opts.rateMbit !== undefined) args.push("-r", String(opts.rateMbit));
  if (opts.perFlowMbit !== undefined) args.push("-f", String(opts.perFlowMbit));
  if (opts.tag !== undefined) args.push("-t", opts.tag);
  if (opts.sameHostname !== undefined) args.push("-s", opts.sameHostname);
  const layout = JSON.parse(await run(args)) as Pick<Cluster, "tag" | "hosts" | "rootAddr" | "rateMbit" | "perFlowMbit">;
  live.add(layout.tag);

  const host = (i: number): ClusterHost => {
    const h = layout.hosts[i];
    if (!Number.isInteger(i) || !h) throw new RangeError(`no host ${i} in cluster ${layout.tag} (${layout.hosts.length} hosts)`);
    return h;
  };
  return {
    ...layout,
    exec: (i, argv, spawnOpts = {}) => spawn("bash", [SCRIPT, "enter", host(i).name, ...argv], spawnOpts),
    launchAgent: LAUNCH_AGENT,
    cutLink: async (i) => {
      host(i);
      await run(["cut", layout.tag, String(i)]);
    },
    restoreLink: async (i) => {
      host(i);
      await run(["restore", layout.tag, String(i)]);
    },
    down: async () => {
      await run(["down", layout.tag]);
      live.delete(layout.tag);
    },
  };
}

/** Removes every uc-* namespace and link on the machine, whoever made them. */
export async function downAll(): Promise<void> {
  await run(["down", "--all"]);
}

/** null if this machine can make clusters (root, ip/tc, netns, veth, bridge, htb); else why not. */
export function netnsUnavailable(): string | null {
  const r = spawnSync("bash", [SCRIPT, "check"], { encoding: "utf8" });
  if (r.error) return `cannot run cluster.sh: ${r.error.message}`;
  return r.status === 0 ? null : r.stdout.trim() || r.stderr.trim() || `cluster.sh check exited ${r.status}`;
}
