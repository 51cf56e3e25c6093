import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
export const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));

export interface JobResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** stdout lines by rank, from the launcher's "[rank] " prefixes. */
  byRank: Map<number, string[]>;
}

/** Runs `unicc run <args>` to completion and splits its output by rank. */
export function runJob(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<JobResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, "run", ...args], {
      env: { ...process.env, ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "", stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`job did not end within ${opts.timeoutMs} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 110_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const byRank = new Map<number, string[]>();
      for (const line of stdout.split("\n")) {
        const m = /^\[(\d+)\] (.*)$/.exec(line);
        if (!m) continue;
        const r = Number(m[1]);
        if (!byRank.has(r)) byRank.set(r, []);
        byRank.get(r)!.push(m[2]);
      }
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0, byRank });
    });
  });
}
