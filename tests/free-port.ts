/**
 * Ports for the servers tests start in the root namespace (slurmctld, etcd, a Ray head, a store):
 * below Linux's ephemeral range (32768 up), where the outgoing connections of the tests running
 * beside them could take the port first, and free when picked.
 */
import { createServer } from "node:net";

const FIRST = 20000;
const SPAN = 12000; // up to 31999

/** Whether this namespace can listen on `port` now. */
function listenable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive ports that are all free now, for `what` (named if none is). */
export async function freePorts(what: string, count = 1): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const first = FIRST + Math.floor(Math.random() * (SPAN - count + 1));
    let free = true;
    for (let p = first; free && p < first + count; p++) free = await listenable(p);
    if (free) return first;
  }
  throw new Error(`${what}: no ${count} free port(s) in ${FIRST}-${FIRST + SPAN - 1} after 50 tries`);
}
