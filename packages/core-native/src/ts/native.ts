import { loadCoreAddon, type AddonKind } from "./addon.js";

export interface NativeTopology {
  localRank: number;
  localSize: number;
  hostIndex: number;
  numHosts: number;
  hierarchical: boolean;
  flatRing: boolean;
  usesShm: boolean;
}

export interface NativePeer {
  host: string;
  addr: string;
  port: number;
  pid: number;
}

export interface NativeComm {
  /** A world of one: this rank is its only peer. */
  setPeers(peers: NativePeer[]): NativeTopology;
  /**
   * Joins this lane and `others` (this rank's other lanes) to the other ranks' through the store
   * that `call` serves (src/native/world/formation.h), on the core's thread.
   */
  formWorld(call: NativeStoreCall, others: NativeComm[], f: NativeFormation): Promise<void>;
  topology(): NativeTopology;
  /** The group made for this process's client (NativeOptions.clientLane): its descriptor and piece size. */
  clientLane(): { fd: number; pieceBytes: number; labels: string[] } | null;
  /**
   * sync: returns once done (throws its error). Else undefined or the error's text when it finished
   * on this thread before returning, or a promise the core's thread settles.
   */
  submit(coll: number, buf: unknown, op: number, root: number, out: unknown, sync: boolean, wire?: number): Promise<void> | string | undefined;
  startEngine(o: NativeEngineOptions): void;
  submitNamed(name: string, buf: unknown, op: number, wire: number): Promise<void>;
  submitNamedSync(names: string[], bufs: unknown[], op: number, wire: number): void;
  stopEngine(): Promise<void>;
  engineSettings(): string;
  engineTuning(): boolean;
  /** A client's command ring (bridge/ring.ts): submits to this lane and to engine's engine. */
  /** client: its pid and the address of its own mapping of the ring, to try cross-memory attach with. */
  openRing(engine: NativeComm, path: string, bytes: number, defaultWire: number, who: string, onFatal: (message: string) => void, client?: { pid: number; probe: number }): NativeRing;
  close(): void;
}

/** A rendezvous store for the core: "set" stores a Buffer, "get" waits up to a timeout in ms for one. */
export type NativeStoreCall = (op: "set" | "get", key: string, arg: Buffer | number) => Promise<Buffer | void>;

export interface NativeFormation {
  /** Every key of this world begins with it. */
  keyPrefix: string;
  /** Where this rank listens. */
  addr: string;
  /** This rank's host identity; "": found by probing /dev/shm (src/native/world/host_probe.h). */
  hostId: string;
  /** Names the probe files: unicc-<job>-<tag>, which the launcher's cleanup covers. */
  probePrefix: string;
  timeoutMs: number;
}

/** The bridge's end of a command ring (src/native/binding/ring_binding.cc). */
export interface NativeRing {
  /** Maps a client's file for both transports: the ArrayBuffer for the socket's requests, the ring's table for its own. */
  map(id: number, path: string, bytes: number): ArrayBuffer;
  unmap(id: number): boolean;
  /** Settles once everything the client submitted before has completed; the ring takes no more. */
  stop(): Promise<void>;
  /** true when the core may work on the client's own memory (ring buffer 0), else why not. */
  attach: true | string;
}

export interface NativeOptions {
  rank: number;
  size: number;
  jobId: string;
  /** The job token ranks prove to each other; none: an empty one, which proves nothing. */
  token?: string;
  timeoutMs: number;
  shmPieceBytes: number;
  smallBytes: number;
  tcpChunkBytes: number;
  hierarchical: boolean;
  streams: number;
  /** One host: also make the group the bridge's client runs its small requests on (client_lane.cc). */
  clientLane?: boolean;
}

export interface NativeEngineOptions {
  fusionBytes: number;
  cycleMs: number;
  stallWarnS: number;
  /** Chrome trace path; empty for none. */
  timeline: string;
  autotune: boolean;
  /** Local ranks' shares of each allreduce follow their cross-host rings' measured rates... */
  balanceRings: boolean;
  /** ...or are pinned to these weights (one per rank of a host; empty: not pinned). */
  hostShares: number[];
}

interface Addon {
  Comm: new (o: NativeOptions) => NativeComm;
}

let addon: Addon | undefined;
let found: { kind: AddonKind; path: string } | undefined;

/** The compiled core: this package's own build, else the prebuilt platform package (see addon.ts). */
export function loadAddon(): Addon {
  if (!addon) {
    const core = loadCoreAddon();
    addon = core.exports as Addon;
    found = { kind: core.kind, path: core.path };
  }
  return addon;
}

/** Which core loadAddon() loaded, and from where (for `unicc doctor`). */
export function loadedAddon(): { kind: AddonKind; path: string } {
  loadAddon();
  return found!;
}
