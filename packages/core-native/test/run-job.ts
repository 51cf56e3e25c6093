import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
export const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));

export interface JobResult {
  /** The first non-zero exit code of the processes, else 0 (null if killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** stdout lines by rank, from the launcher's "[rank] " prefixes. */
  byRank: Map<number, string[]>;
}

/** Lines "[rank] text" grouped by rank, as `unicc run` prefixes them. */
export function splitByRank(stdout: string): Map<number, string[]> {
  const byRank = new Map<number, string[]>();
  for (const m of stdout.matchAll(/^\[(\d+)\] (.*)$/gm)) {
    const r = Number(m[1]);
    if (!byRank.has(r)) byRank.set(r, []);
    byRank.get(r)!.push(m[2]);
  }
  return byRank;
}

/** After a timeout's SIGTERM, how long a launcher has to stop its ranks (its --grace, 5 s by default) before SIGKILL. */
const KILL_AFTER_MS = 15_000;

/**
 * Waits for processes that make up one job (launchers, or ranks started by hand) and gathers
 * their output; `byRank` turns each process's stdout into lines by rank (default: the "[rank] "
 * prefixes of all of it). Stops them all and fails if they have not ended within timeoutMs.
 */
export function collect(
  children: ChildProcess[],
  opts: { timeoutMs?: number; byRank?: (stdouts: string[]) => Map<number, string[]> } = {},
): Promise<JobResult> {
  const t0 = Date.now();
  const outs = children.map(() => "");
  let stderr = "";
  const ends = children.map((child, i) => {
    child.stdout?.on("data", (d) => (outs[i] += d));
    child.stderr?.on("data", (d) => (stderr += d));
    return new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on("close", (code, signal) => resolve([code, signal])));
  });
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // SIGTERM first: a launcher then stops every rank it started; SIGKILLed, it would leave them running.
      children.forEach((c) => c.kill("SIGTERM"));
      const hard = setTimeout(() => children.forEach((c) => c.kill("SIGKILL")), KILL_AFTER_MS);
      void Promise.all(ends).then(() => {
        clearTimeout(hard);
        reject(new Error(`job did not end within ${opts.timeoutMs ?? 110_000} ms\n${outs.join("")}\n${stderr}`));
      });
    }, opts.timeoutMs ?? 110_000);
    void Promise.all(ends).then((results) => {
      if (timedOut) return;
      clearTimeout(timer);
      const failed = results.find(([code, signal]) => code !== 0 || signal !== null);
      const [code, signal] = failed ?? [0, null];
      const stdout = outs.join("");
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, byRank: (opts.byRank ?? (() => splitByRank(stdout)))(outs) });
    });
  });
}

/** Runs `unicc run <args>` to completion and splits its output by rank. */
export function runJob(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<JobResult> {
  const child = spawn(process.execPath, [CLI, "run", ...args], { env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
  return collect([child], opts);
}

/** Each process is one rank (index = rank), its stdout unprefixed. */
export const oneRankEach = (stdouts: string[]) => new Map(stdouts.map((o, r) => [r, o.split("\n").filter(Boolean)]));

/** An environment for a rank started by hand: this process's, less what a launcher of ours set, plus `place`. */
export function handStarted(place: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ["UNICC_STORE_ADDR", "UNICC_RANK", "UNICC_SIZE", "UNICC_HOST_ID", "UNICC_JOB_ID", "MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"])
    delete env[k];
  return { ...env, ...place };
}

/** One rank's stdout lines as one string. */
export function lines(r: { byRank: Map<number, string[]> }, rank: number): string {
  return (r.byRank.get(rank) ?? []).join("\n");
}
