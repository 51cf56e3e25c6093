// Entry of dist/bridge.js: `node bridge.js --socket <dir>/<name> [--slab-dir DIR] [--connect-timeout-ms MS]`,
// started with the rank's environment by the Python client (python/unicc/_bridge.py), or by
// `unicc run --bridge` (launcher/bridges.ts, which names the shared slab folder and waits longer for
// a client that has yet to start Python). Exit code 0 on a clean close.
import { newCommand, parseCommand, parseOrExit, UsageError, wholeNumber } from "../cli-options.js";
import { readEnv } from "../env.js";
import { runBridge } from "./server.js";

const USAGE = `usage: node bridge.js --socket <private dir>/<socket name> [--slab-dir DIR] [--connect-timeout-ms MS]
`;

interface BridgeArgs {
  socketPath: string;
  slabDir?: string;
  connectTimeoutMs?: number;
}

function parseArgs(argv: string[]): BridgeArgs | "help" {
  const o: Partial<BridgeArgs> = {};
  const cmd = newCommand("bridge.js")
    .option("--socket <PATH>", "", (v) => void (o.socketPath = v))
    .option("--slab-dir <DIR>", "", (v) => void (o.slabDir = v))
    .option("--connect-timeout-ms <MS>", "", (v) => void (o.connectTimeoutMs = wholeNumber("--connect-timeout-ms", v, 1)));
  if (parseCommand(cmd, argv).opts.help) return "help";
  if (!o.socketPath) throw new UsageError("--socket is required");
  return { ...o, socketPath: o.socketPath };
}

async function main(argv: string[]): Promise<number> {
  const o = parseOrExit("bridge.js", USAGE, () => parseArgs(argv));
  if (typeof o === "number") return o;
  const connectTimeoutMs = o.connectTimeoutMs ?? readEnv(process.env).timeoutMs;
  return runBridge({ socketPath: o.socketPath, slabDir: o.slabDir, connectTimeoutMs });
}

// A stopped job signals the client's whole process group, us included. The client decides: it
// closes the connection as it exits, which ends us (and a client that outlives the signal, to
// report what its peers did, keeps its bridge).
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(sig, () => undefined);

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`unicc bridge (rank ${process.env.UNICC_RANK ?? process.env.RANK ?? 0}): ${e.message}\n`);
    process.exit(1);
  },
);
