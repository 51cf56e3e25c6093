// `unicc run --ray ADDRESS --min-np A --max-np B`: an elastic job on a Ray cluster. Ray plays the
// two parts a discovery script and a launch agent play elsewhere (python/unicc/_ray.py): its live
// nodes and their CPUs are the slots, polled like the script's answer, and each rank runs as a
// Ray actor on its node, started and stopped like `ssh host command`. The membership stays the
// launcher's (launcher/elastic.ts): a node that joins the cluster adds ranks at the next commit,
// an actor that dies is a rank lost.
import type { HostDiscovery } from "./discovery.js";
import { UsageError } from "./options.js";

/** How often Ray is asked for its nodes unless --discovery-interval says otherwise: each ask starts Python and connects to Ray. */
export const RAY_DISCOVERY_INTERVAL_MS = 2000;

export interface RaySlots {
  /** The launch agent: runs `{host}`'s rank as an actor on the Ray node at that address. */
  launchAgent: string;
  /** The discovery command: the Ray cluster's nodes as "ip:cpus" lines. */
  discovery: HostDiscovery;
}

/** What --ray ADDRESS sets; UNICC_RAY_PYTHON (default python3) is a Python with ray and unicc. */
export function raySlots(address: string, env: NodeJS.ProcessEnv): RaySlots {
  if (/\s/.test(address)) throw new UsageError(`--ray takes the cluster's HOST:PORT, got '${address}'`);
  const python = env.UNICC_RAY_PYTHON || "python3";
  if (/\s/.test(python)) throw new UsageError(`UNICC_RAY_PYTHON must be one path without spaces, got '${python}'`);
  return {
    launchAgent: `${python} -m unicc._ray exec ${address} {host} --`,
    discovery: { command: python, args: ["-m", "unicc._ray", "hosts", address], name: `--ray ${address}` },
  };
}
