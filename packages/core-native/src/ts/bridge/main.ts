// Entry of dist/bridge.js: `node bridge.js --socket <dir>/<name> [--slab-dir DIR] [--connect-timeout-ms MS]`,
// started with the rank's environment by the Python client (python/unicc/_bridge.py), or by
// `unicc run --bridge` (launcher/bridges.ts, which names the shared slab folder and waits longer for
// a client that has yet to start Python). Exit code 0 on a clean close.
import { readEnv } from "../env.js";
import { runBridge } from "./server.js";

async function main(argv: string[]): Promise<number> {
  const i = argv.indexOf("--socket");
  const socketPath = i >= 0 ? argv[i + 1] : undefined;
  if (!socketPath) {
    process.stderr.write("usage: node bridge.js --socket <private dir>/<socket name>\n");
    return 2;
  }
  const value = (flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const connectTimeoutMs = Number(value("--connect-timeout-ms") ?? readEnv(process.env).timeoutMs);
  return runBridge({ socketPath, slabDir: value("--slab-dir"), connectTimeoutMs });
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
