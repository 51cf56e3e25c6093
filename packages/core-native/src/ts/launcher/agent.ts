// Where a rank runs: directly on this machine, or on another host through the launch agent.
import { accessSync, constants, statSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { basename, delimiter, join } from "node:path";

import { UsageError } from "./options.js";

export function isLocalHost(name: string): boolean {
  return name === "localhost" || name === "127.0.0.1" || name === "::1" || name === hostname();
}

/** Where the store listens when no --rendezvous-addr is given. */
export function defaultRendezvousAddr(hostNames: string[]): string {
  if (hostNames.every(isLocalHost)) return "127.0.0.1";
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  throw new UsageError("this machine has no non-loopback IPv4 address for the other hosts to reach the store at; pass --rendezvous-addr");
}

const SAFE = /^[\w@%+=:,./-]+$/;

/** Quotes one word for a POSIX shell. */
export function shellQuote(s: string): string {
  return SAFE.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The argv that runs `argv` on `host` through the agent template. ssh hands the remote shell one
 * string, so the words are shell-quoted for it; other agents (ip netns exec, env, docker exec...)
 * exec their arguments as given.
 */
export function agentArgv(template: string, host: string, argv: string[]): string[] {
  const parts = template.split(/\s+/).filter(Boolean).map((p) => p.replaceAll("{host}", host));
  const viaShell = /ssh$/.test(basename(parts[0] ?? ""));
  return [...parts, ...(viaShell ? [argv.map(shellQuote).join(" ")] : argv)];
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Whether `cmd` would be found by spawn() with this PATH (a name with a slash is taken as a path). */
export function commandExists(cmd: string, path: string | undefined): boolean {
  if (cmd.includes("/")) return isExecutableFile(cmd);
  return (path ?? "").split(delimiter).some((dir) => isExecutableFile(join(dir || ".", cmd)));
}
