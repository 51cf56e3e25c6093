// Which ranks share a host is decided by whether they really share memory, not by their hostname:
// machines cloned from one image, and containers with a fixed hostname, all carry the same name.
// Each rank leaves a probe file with a random nonce in /dev/shm; the ranks whose probes it can
// read are on its host. Sharing one /dev/shm is an equivalence, so every rank of a host finds the
// same group, and every rank computes the same name for it.
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";

import type { RendezvousStore } from "./store/index.js";

interface Probe {
  hostname: string;
  nonce: string;
}

export interface HostProbe {
  /** This rank's host: equal on exactly the ranks that share its /dev/shm. */
  hostId: string;
  /** Removes the probe file; call once every rank has published its host (it read ours by then). */
  remove(): void;
}

function probePath(prefix: string, rank: number): string {
  return `/dev/shm/${prefix}-probe-${rank}`;
}

function readsNonce(path: string, nonce: string): boolean {
  try {
    return readFileSync(path, "utf8") === nonce;
  } catch {
    return false;
  }
}

/**
 * Finds this rank's host among `size` ranks. `prefix` names the probe files (unicc-<job>-<gen>,
 * so the launcher's cleanup of /dev/shm/unicc-<job>-* covers them), `key` the store's keys.
 */
export async function probeHost(
  store: RendezvousStore,
  key: (k: string) => string,
  rank: number,
  size: number,
  prefix: string,
  timeoutMs: number,
): Promise<HostProbe> {
  const mine: Probe = { hostname: hostname(), nonce: randomBytes(16).toString("hex") };
  const path = probePath(prefix, rank);
  let wrote = true;
  try {
    writeFileSync(path, mine.nonce, { mode: 0o600 });
  } catch {
    wrote = false; // no usable /dev/shm: this rank can share memory with nobody
  }
  await store.set(key(`host-probe/${rank}`), Buffer.from(JSON.stringify(mine)));
  const all: Probe[] = [];
  for (let r = 0; r < size; r++) all.push(JSON.parse((await store.get(key(`host-probe/${r}`), timeoutMs)).toString()));

  const group = wrote ? all.flatMap((p, r) => (r === rank || readsNonce(probePath(prefix, r), p.nonce) ? [r] : [])) : [rank];
  const first = group[0];
  const name = all[first].hostname;
  // The plain hostname when no other host carries it, so messages name the machine as users know it.
  const ambiguous = all.some((p, r) => p.hostname === name && !group.includes(r));
  return {
    hostId: ambiguous ? `${name}#${first}` : name,
    remove: () => rmSync(path, { force: true }),
  };
}
