import { networkInterfaces } from "node:os";

import { int, readPlacement, type Placement } from "./launcher-env.js";
import { parseEtcdUrl } from "./store/etcd.js";

import type { NativeEngineOptions, NativeOptions } from "./native.js";

/** Where this process sits in the job, read from the variables a launcher sets. */
export interface RankEnv extends Placement {
  /** UNICC_RENDEZVOUS: etcd://HOST:PORT/PREFIX instead of the embedded store. */
  rendezvous?: { url: string; ttlS: number };
  jobId?: string;
  /** UNICC_ELASTIC_ID: this worker's id in an elastic job (`unicc run --min-np/--max-np`); rank and size come from the generation it joins. */
  elastic?: { id: string };
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

/** UNICC_RENDEZVOUS (etcd://HOST:PORT/PREFIX), checked, with the lease TTL of its keys. */
function rendezvous(env: NodeJS.ProcessEnv): RankEnv["rendezvous"] {
  const url = env.UNICC_RENDEZVOUS;
  if (!url) return undefined;
  parseEtcdUrl(url);
  return { url, ttlS: int(env, "UNICC_RENDEZVOUS_TTL_S", 1) ?? DEFAULT_TIMEOUT_S };
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
 * Reads the rank's place from the launcher that started it (`unicc run`, torchrun, Open MPI,
 * Slurm, PMI: launcher-env.ts; rank 0 hosts the store for all but `unicc run`), or else makes a
 * world of one so that a script also runs on its own; and the UNICC_* settings.
 */
export function readEnv(env: NodeJS.ProcessEnv = process.env): RankEnv {
  const timeoutS = int(env, "UNICC_TIMEOUT_S", 1) ?? DEFAULT_TIMEOUT_S;
  const common = {
    jobId: env.UNICC_JOB_ID || undefined,
    elastic: env.UNICC_ELASTIC_ID ? { id: env.UNICC_ELASTIC_ID } : undefined,
    rendezvous: rendezvous(env),
    token: env.UNICC_JOB_TOKEN || undefined,
    // Pinned host identity; unset, ranks find out who shares their memory (src/native/world/host_probe.h).
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
  return { ...readPlacement(env), ...common };
}
