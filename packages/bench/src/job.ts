// A job started through the `unicc run` command of @unicc/core, as a user starts one: the
// benchmarks use the product's public command, not its internals.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { constants } from "node:os";

const UNICC = join(dirname(createRequire(import.meta.url).resolve("@unicc/core/package.json")), "bin/unicc.js");
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

export interface JobIO {
  /** The ranks' "[rank] "-prefixed lines, as `unicc run` prints them. */
  stdout: Writable;
  stderr: Writable;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs `unicc run FLAGS -- COMMAND`; resolves with its exit code. A SIGINT or SIGTERM sent to the
 * bench alone is passed on, so the launcher stops its ranks.
 */
export function runJob(flags: string[], command: string[], io: JobIO): Promise<number> {
  const child = spawn(process.execPath, [UNICC, "run", ...flags, "--", ...command], { stdio: ["ignore", "pipe", "pipe"], env: io.env ?? process.env });
  child.stdout.pipe(io.stdout, { end: false });
  child.stderr.pipe(io.stderr, { end: false });
  const pass = (sig: NodeJS.Signals) => child.kill(sig);
  for (const sig of STOP_SIGNALS) process.on(sig, pass);
  return new Promise((resolve) => {
    const done = (code: number) => {
      for (const sig of STOP_SIGNALS) process.off(sig, pass);
      resolve(code);
    };
    child.on("error", (e) => {
      io.stderr.write(`cannot start ${UNICC}: ${e.message}\n`);
      done(127);
    });
    child.on("close", (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}
