// `unicc run --bridge`: the launcher starts each local rank's bridge itself (in its own environment,
// where Node and the addon run) and hands the rank the socket's address, so a rank inside a chroot or
// a container whose libraries Node cannot use still reaches the core. Socket and slabs live in one
// folder both sides see (/dev/shm by default, else the folder the user names and shares).
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Writable } from "node:stream";

import { relayLines } from "./relay.js";

export const DEFAULT_BRIDGE_DIR = "/dev/shm";
const BRIDGE_JS = fileURLToPath(new URL("./bridge.js", import.meta.url)); // dist/bridge.js beside dist/cli.js

export interface RankBridge {
  child: ChildProcess;
  /** Variables the rank needs to connect (UNICC_BRIDGE_SOCKET, UNICC_BRIDGE_DIR, UNICC_BRIDGE_PID). */
  env: Record<string, string>;
  /** Output relayed and process gone. */
  closed: Promise<void>;
  /** Whether no client ever came: the bridge removes its socket folder once one is in. */
  unclaimed(): boolean;
}

/**
 * Starts rank `rank`'s bridge with the rank's environment; its output is relayed with the rank's prefix.
 * It waits connectTimeoutMs for its client: the launcher ends it at once if the rank exits first.
 */
export function startBridge(
  where: { dir: string; jobId: string; rank: number },
  env: NodeJS.ProcessEnv,
  out: { stdout: Writable; stderr: Writable },
  connectTimeoutMs: number,
): RankBridge {
  const { dir, jobId, rank } = where;
  // A private (0700) folder per rank: the bridge refuses any other, and removes it once its client is in.
  const home = join(dir, `unicc-${jobId}-bridge-${rank}`);
  mkdirSync(home, { mode: 0o700 });
  const socket = join(home, "s");
  const child = spawn(process.execPath, [BRIDGE_JS, "--socket", socket, "--slab-dir", dir, "--connect-timeout-ms", String(connectTimeoutMs)], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const prefix = `[${rank}] `;
  const output = Promise.all([relayLines(child.stdout!, out.stdout, prefix), relayLines(child.stderr!, out.stderr, prefix)]);
  const closed = new Promise<void>((resolve) => child.once("close", () => void output.then(() => resolve())));
  child.once("error", () => undefined); // process.execPath always exists; a failed start shows as its exit
  return {
    child,
    env: { UNICC_BRIDGE_SOCKET: socket, UNICC_BRIDGE_DIR: dir, UNICC_BRIDGE_PID: String(child.pid ?? 0) },
    closed,
    unclaimed: () => existsSync(home),
  };
}

/**
 * Removes what a job's bridges may have left in `dir` (sockets of bridges that never got a client,
 * slabs); with `rank`, only what that rank's bridge and client left (its client names its slabs
 * unicc-<job>-bridge-<rank>-<pid>-<n>).
 */
export function removeBridgeFiles(dir: string, jobId: string, rank?: number): void {
  const prefix = rank === undefined ? `unicc-${jobId}-` : `unicc-${jobId}-bridge-${rank}`;
  const mine = (f: string) => f.startsWith(prefix) && (rank === undefined || f === prefix || f.startsWith(`${prefix}-`));
  try {
    for (const f of readdirSync(dir)) if (mine(f)) rmSync(join(dir, f), { force: true, recursive: true });
  } catch {
    // the folder is gone
  }
}
