import { networkInterfaces } from "node:os";

import type { NativeEngineOptions, NativeOptions } from "./native.js";

/** Where this process sits in the job, read from the variables a launcher sets. */
export interface RankEnv {
  rank: number;
  size: number;
  /** host:port of the rendezvous store. */
  storeAddr: string;
  /** True when this rank must host the store itself (torchrun-style variables only, rank 0). */
  hostsStore: boolean;
  jobId?: string;
  /** UNICC_JOB_TOKEN: the secret every connection of the job proves (set by `unicc run`). */
  token?: string;
  /** Ranks with the same host id share memory; others talk over TCP. */
  hostId?: string;
  /** Address peers use to reach this rank; default: the one this rank reaches the store from. */
  hostAddr?: string;
  timeoutMs: number;
  /** What the engine is started with, and the default compression of allreduces. */
  engine: NativeEngineOptions & { compression: Compression };
  tuning: Pick<NativeOptions, "hierarchical" | "shmPieceBytes" | "smallBytes" | "tcpChunkBytes" | "streams">;
}

export const DEFAULT_TIMEOUT_S = 30;

/** How float32 values of an allreduce travel between hosts. */
export type Compression = "none" | "fp16" | "bf16";
export const COMPRESSIONS: readonly Compression[] = ["none", "fp16", "bf16"];

function int(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max)
    throw new Error(`unicc: ${name}=${raw} is not an integer between ${min} and ${max}`);
  return v;
}

function bool(env: NodeJS.ProcessEnv, name: string, dflt: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "" || raw === "auto") return dflt;
  if (["1", "true", "on", "yes"].includes(raw)) return true;
  if (["0", "false", "off", "no"].includes(raw)) return false;
  throw new Error(`unicc: ${name}=${raw} must be 1 or 0`);
}

function compression(env: NodeJS.ProcessEnv): Compression {
  const raw = (env.UNICC_COMPRESSION || "none") as Compression;
  if (!COMPRESSIONS.includes(raw)) throw new Error(`unicc: UNICC_COMPRESSION=${raw} must be one of ${COMPRESSIONS.join(", ")}`);
  return raw;
}

/**
 * UNICC_HOST_SHARES: how each allreduce is split among the ranks of a host, each of which carries
 * its block across hosts on its own ring. auto (default): the engine moves the split toward the
 * rings' measured rates; even: equal blocks; or one positive weight per rank of a host ("3,1").
 */
function hostShares(env: NodeJS.ProcessEnv): { balanceRings: boolean; hostShares: number[] } {
  const raw = env.UNICC_HOST_SHARES ?? "auto";
  if (raw === "auto" || raw === "") return { balanceRings: true, hostShares: [] };
  if (raw === "even") return { balanceRings: false, hostShares: [] };
  const weights = raw.split(",").map(Number);
  if (weights.length < 2 || weights.some((w) => !(w > 0) || !Number.isFinite(w)))
    throw new Error(`unicc: UNICC_HOST_SHARES=${raw} must be auto, even, or positive weights, one per rank of a host (e.g. 3,1)`);
  return { balanceRings: false, hostShares: weights };
}

/** UNICC_TIMELINE names a file; several ranks get one each, the rank number added before the extension. */
function timelinePath(env: NodeJS.ProcessEnv): string {
  const path = env.UNICC_TIMELINE;
  if (!path) return "";
  const rank = env.UNICC_RANK ?? env.RANK;
  if (rank === undefined) return path;
  const dot = path.lastIndexOf(".");
  return dot > path.lastIndexOf("/") ? `${path.slice(0, dot)}.rank${rank}${path.slice(dot)}` : `${path}.rank${rank}`;
}

/** The first IPv4 address (else IPv6) of a network interface of this host, for listening on it only. */
export function interfaceAddress(name: string, variable = "--network-interface"): string {
  const all = networkInterfaces();
  const addrs = all[name];
  if (!addrs?.length)
    throw new Error(`unicc: ${variable} ${name}: this host has no such interface (it has ${Object.keys(all).join(", ")})`);
  const pick = addrs.find((a) => a.family === "IPv4") ?? addrs[0];
  return pick.address;
}

/**
 * Reads UNICC_* (set by `unicc run`), or else the variables torchrun sets (RANK, WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT; rank 0 then hosts the store at MASTER_ADDR:MASTER_PORT), or else
 * makes a world of one so that a script also runs on its own.
 */
export function readEnv(env: NodeJS.ProcessEnv = process.env): RankEnv {
  const timeoutS = int(env, "UNICC_TIMEOUT_S", 1) ?? DEFAULT_TIMEOUT_S;
  const common = {
    jobId: env.UNICC_JOB_ID || undefined,
    token: env.UNICC_JOB_TOKEN || undefined,
    // Pinned host identity; unset, ranks find out who shares their memory (host-identity.ts).
    hostId: env.UNICC_HOST_ID || undefined,
    // Peers reach this rank, and its listeners bind, on this address only.
    hostAddr:
      env.UNICC_HOST_ADDR ||
      (env.UNICC_NETWORK_INTERFACE ? interfaceAddress(env.UNICC_NETWORK_INTERFACE, "UNICC_NETWORK_INTERFACE") : undefined),
    timeoutMs: timeoutS * 1000,
    engine: {
      fusionBytes: int(env, "UNICC_FUSION_BYTES", 0, 1 << 30) ?? 64 * 1024 * 1024,
      cycleMs: int(env, "UNICC_CYCLE_MS", 0, 1000) ?? 1,
      stallWarnS: int(env, "UNICC_STALL_WARN_S", 1) ?? 60,
      timeline: timelinePath(env),
      // Pinning what it tunes turns the tuner off, unless it is asked for explicitly.
      autotune: bool(env, "UNICC_AUTOTUNE", !env.UNICC_FUSION_BYTES && !env.UNICC_STREAMS),
      ...hostShares(env),
      compression: compression(env),
    },
    tuning: {
      hierarchical: bool(env, "UNICC_HIERARCHICAL", true),
      shmPieceBytes: int(env, "UNICC_SHM_PIECE_BYTES", 4096, 1 << 30) ?? 128 * 1024, // a round stays in L2/L3 (measured best at 2 and 4 ranks)
      smallBytes: int(env, "UNICC_SMALL_BYTES", 0, 1 << 30) ?? 64 * 1024,
      tcpChunkBytes: int(env, "UNICC_TCP_CHUNK_BYTES", 4096, 1 << 30) ?? 1024 * 1024,
      // Where one TCP stream cannot fill the link (per-flow limits of cloud networks), several can.
      streams: int(env, "UNICC_STREAMS", 1, 16) ?? 4,
    },
  };
  const place = (rankVar: string, sizeVar: string) => {
    const size = int(env, sizeVar, 1);
    const rank = int(env, rankVar, 0);
    if (size === undefined || rank === undefined)
      throw new Error(`unicc: ${rankVar} and ${sizeVar} must both be set (got ${rankVar}=${env[rankVar]}, ${sizeVar}=${env[sizeVar]})`);
    if (rank >= size) throw new Error(`unicc: ${rankVar}=${rank} must be below ${sizeVar}=${size}`);
    return { rank, size };
  };
  if (env.UNICC_STORE_ADDR) {
    return { ...place("UNICC_RANK", "UNICC_SIZE"), storeAddr: env.UNICC_STORE_ADDR, hostsStore: false, ...common };
  }
  if (env.RANK !== undefined || env.WORLD_SIZE !== undefined) {
    const { rank, size } = place("RANK", "WORLD_SIZE");
    if (size > 1 && (!env.MASTER_ADDR || !env.MASTER_PORT))
      throw new Error("unicc: RANK and WORLD_SIZE are set but MASTER_ADDR or MASTER_PORT is missing; set both, or start the job with `unicc run`");
    const port = int(env, "UNICC_STORE_PORT", 1, 65535) ?? int(env, "MASTER_PORT", 1, 65535) ?? 0;
    return { rank, size, storeAddr: `${env.MASTER_ADDR ?? "127.0.0.1"}:${port}`, hostsStore: rank === 0, ...common };
  }
  return { rank: 0, size: 1, storeAddr: "", hostsStore: false, ...common };
}
