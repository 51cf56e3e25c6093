// --host-discovery-script: a program that prints the job's hosts, one "host:slots" per line, run
// now and then; an elastic job grows onto the slots it adds.
import { execFile } from "node:child_process";

import { parseHosts, type HostSlots } from "./options.js";

/** How long one run of the script may take before it is killed and its answer skipped. */
const SCRIPT_TIMEOUT_MS = 10_000;

/** Where an elastic job's hosts come from: a command that prints "host:slots" lines. */
export interface HostDiscovery {
  command: string;
  /** unicc run --ray's command is a Python module. */
  args: string[];
  /** What the user gave, for messages: "--host-discovery-script S" or "--ray HOST:PORT". */
  name: string;
}

/** Runs the command once: its hosts, or an error saying what was wrong with it. */
export function discoverHosts(d: HostDiscovery): Promise<HostSlots[]> {
  const { name } = d;
  return new Promise((resolve, reject) => {
    execFile(d.command, d.args, { timeout: SCRIPT_TIMEOUT_MS, encoding: "utf8" }, (e, stdout, stderr) => {
      if (e) return reject(new Error(`${name} failed (${e.message.trim()}${stderr ? `: ${stderr.trim()}` : ""})`));
      const lines = stdout.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
      try {
        resolve(lines.length ? parseHosts(lines.join(",")) : []);
      } catch (err) {
        reject(new Error(`${name}: ${(err as Error).message}`));
      }
    });
  });
}

/** Polls the command every intervalMs (one run at a time) and passes each answer on; returns the stop. */
export function pollHosts(d: HostDiscovery, intervalMs: number, onHosts: (h: HostSlots[]) => void, onError: (e: Error) => void): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    discoverHosts(d).then(
      (h) => !stopped && onHosts(h),
      (e: Error) => !stopped && onError(e),
    ).finally(() => {
      if (!stopped) timer = setTimeout(tick, intervalMs);
    });
  };
  timer = setTimeout(tick, intervalMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
