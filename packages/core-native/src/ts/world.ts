import { randomBytes } from "node:crypto";

import { hostname } from "node:os";

import { ELASTIC_KEYS, GenerationWatch, joinGeneration, Superseded } from "./elastic.js";
import { COMPRESSIONS, readEnv, type Compression, type RankEnv } from "./env.js";
import { loadAddon, type NativeComm, type NativeStoreCall, type NativeTopology } from "./native.js";
import { EtcdStore } from "./store/etcd.js";
import { splitHostPort, StoreClient, StoreServer, type RendezvousStore } from "./store/index.js";

/** Arrays the core works on in place. */
export type CommArray = Float32Array | Float64Array | Int32Array | BigInt64Array;

export type ReduceOp = "sum" | "average" | "avg" | "min" | "max" | "product" | "prod";

const COLL = { allreduce: 0, broadcast: 1, allgather: 2, barrier: 3 } as const;
const OPS: Record<ReduceOp, number> = { sum: 0, average: 1, avg: 1, min: 2, max: 3, product: 4, prod: 4 };

export interface AllreduceOptions {
  op?: ReduceOp;
  /**
   * Hands the array to the engine under this name: it completes once every rank has submitted
   * the same name (in any order), fused with other ready names. Without a name the allreduce runs
   * at once, in call order, which must then be the same on every rank.
   */
  name?: string;
  /** float32 only: values cross hosts in 16 bits and are summed in float32 (default UNICC_COMPRESSION, else "none"). */
  compression?: Compression;
}

export interface InitOptions {
  /** Overrides for the variables read by readEnv (tests, embedding). */
  env?: NodeJS.ProcessEnv;
  /** Another rendezvous backend instead of the embedded store (which it then neither hosts nor dials). */
  store?: RendezvousStore;
  /** Elastic jobs (UNICC_ELASTIC_ID set): join a generation after this one (default: any). */
  after?: number;
  /**
   * @internal The bridge's: on one host, also make the shared-memory group its client runs small
   * requests on itself (World.clientLane; not in elastic jobs).
   */
  clientLane?: boolean;
}

/** A failure of the job's communication: a peer died, timed out, or asked for something else. */
export class UniccError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UniccError";
  }
}

interface InFlight {
  buffer: ArrayBufferLike;
  start: number;
  end: number;
  what: string;
}

/**
 * One process's membership in a job. Collectives work in place on the caller's arrays and run
 * on the core's own thread. The one rule: do not read or write an array until the promise of
 * the collective using it has settled (the world refuses a second collective on it meanwhile).
 */
export class World {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  /** How ranks are joined: "single" (one rank), "shm" (one host), "hierarchical" or "ring" (several hosts). */
  readonly algorithm: "single" | "shm" | "hierarchical" | "ring";
  private readonly inFlight = new Set<InFlight>();
  private closed = false;
  private readonly compression: Compression;
  /** Elastic jobs: the generation this world is (-1 in a job that is not elastic). */
  readonly generation: number;

  /** @internal use init() */
  constructor(
    private readonly comm: NativeComm,
    /** Carries named requests; the same object as comm in a world of one. */
    private readonly engine: NativeComm,
    env: RankEnv,
    topo: NativeTopology,
    private readonly store: RendezvousStore | undefined,
    private readonly storeServer: StoreServer | undefined,
    private readonly watch?: GenerationWatch,
  ) {
    this.generation = watch?.gen ?? -1;
    this.rank = env.rank;
    this.size = env.size;
    this.localRank = topo.localRank;
    this.localSize = topo.localSize;
    this.compression = env.engine.compression;
    this.algorithm =
      env.size === 1 ? "single" : topo.numHosts === 1 ? "shm" : topo.hierarchical ? "hierarchical" : "ring";
  }

  /** Reduces `buf` across ranks in place; every rank ends with the same result. */
  allreduce<T extends CommArray>(buf: T, opts: AllreduceOptions = {}): Promise<T> {
    const op = opCode(opts.op), wire = this.wireCode(opts.compression);
    if (opts.name !== undefined) {
      const name = checkName(opts.name);
      return this.start(`allreduce of '${name}'`, [buf], () => this.engine.submitNamed(name, buf, op, wire), buf);
    }
    return this.start("allreduce", [buf], () => this.comm.submit(COLL.allreduce, buf, op, 0, undefined, false, wire), buf);
  }

  /** Blocking allreduce, for callers that must stay synchronous; it still runs on the core's thread. */
  allreduceSync<T extends CommArray>(buf: T, opts: Omit<AllreduceOptions, "name"> = {}): T {
    const op = opCode(opts.op), wire = this.wireCode(opts.compression);
    this.startSync("allreduce", [buf], () => this.comm.submit(COLL.allreduce, buf, op, 0, undefined, true, wire));
    return buf;
  }

  /**
   * Blocking allreduce of many named arrays through the engine (fused, negotiated by name), for
   * synchronous callers such as an optimizer inside tf.tidy. Returns once all are reduced.
   */
  allreduceNamedSync(entries: { name: string; buf: CommArray }[], opts: Omit<AllreduceOptions, "name"> = {}): void {
    const op = opCode(opts.op), wire = this.wireCode(opts.compression);
    const names = entries.map((e) => checkName(e.name));
    if (new Set(names).size !== names.length) throw new RangeError("unicc: allreduceNamedSync got the same name twice");
    this.startSync("allreduce", entries.map((e) => e.buf), () => this.engine.submitNamedSync(names, entries.map((e) => e.buf), op, wire));
  }

  /** What the engine settled on (fusion size, and whether the tuner is still measuring). */
  get engineSettings(): string {
    return this.engine.engineSettings();
  }

  /**
   * @internal The native lanes and the default compression's code: the bridge's command ring
   * (bridge/server.ts) submits to them from native code, without a promise per request.
   */
  nativeLanes(): { comm: NativeComm; engine: NativeComm; wire: number } {
    return { comm: this.comm, engine: this.engine, wire: this.wireCode() };
  }

  /**
   * @internal The group made for the bridge's client (InitOptions.clientLane): its descriptor in
   * this process, piece size and each local rank's label; null where there is none.
   */
  clientLane(): { fd: number; pieceBytes: number; labels: string[] } | null {
    return this.comm.clientLane();
  }

  /** True while the tuner is still measuring candidates on this rank. */
  get engineTuning(): boolean {
    return this.engine.engineTuning();
  }

  /** Copies `buf` of rank `root` into `buf` of every rank. */
  broadcast<T extends CommArray>(buf: T, opts: { root?: number } = {}): Promise<T> {
    return this.start("broadcast", [buf], () => this.comm.submit(COLL.broadcast, buf, 0, this.checkRoot(opts.root), undefined, false), buf);
  }

  broadcastSync<T extends CommArray>(buf: T, opts: { root?: number } = {}): T {
    this.startSync("broadcast", [buf], () => this.comm.submit(COLL.broadcast, buf, 0, this.checkRoot(opts.root), undefined, true));
    return buf;
  }

  /** Concatenates every rank's `input` in rank order into `output` (size x input.length elements). */
  allgather<T extends CommArray>(input: T, output?: T): Promise<T> {
    const out = output ?? this.allgatherOutput(input);
    return this.start("allgather", [input, out], () => this.comm.submit(COLL.allgather, input, 0, 0, out, false), out);
  }

  allgatherSync<T extends CommArray>(input: T, output?: T): T {
    const out = output ?? this.allgatherOutput(input);
    this.startSync("allgather", [input, out], () => this.comm.submit(COLL.allgather, input, 0, 0, out, true));
    return out;
  }

  /** Resolves once every rank has called barrier. */
  barrier(): Promise<void> {
    return this.start("barrier", [], () => this.comm.submit(COLL.barrier, undefined, 0, 0, undefined, false), undefined);
  }

  barrierSync(): void {
    this.startSync("barrier", [], () => this.comm.submit(COLL.barrier, undefined, 0, 0, undefined, true));
  }

  /** Waits for collectives in flight, then releases the core's thread, sockets and shared memory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watch?.stop();
    try {
      // Collective: the engine finishes what every rank submitted, fails names that some rank
      // never submitted, then all ranks leave together. Waiting for those names first could wait
      // forever on a rank that has already closed.
      await this.engine.stopEngine();
      while (this.inFlight.size) await Promise.allSettled([...this.pending]);
    } finally {
      if (this.engine !== this.comm) this.engine.close();
      this.comm.close();
    }
    this.store?.close();
    await this.storeServer?.close();
  }

  /** Elastic jobs: the launcher will replace this world (a rank was lost, or hosts joined). */
  get membershipChanged(): boolean {
    return this.watch?.replaced ?? false;
  }

  /**
   * Elastic jobs: whether any rank has seen membershipChanged, agreed by every rank (collective,
   * one tiny allreduce): all ranks then leave this world at the same point.
   */
  async membershipChangedAnywhere(): Promise<boolean> {
    const flag = Int32Array.of(this.membershipChanged ? 1 : 0);
    if (this.size > 1) await this.allreduce(flag, { op: "max" });
    return flag[0] === 1;
  }

  /**
   * Leaves a world that has failed (or that the launcher replaces) without the other ranks:
   * releases the core's threads, sockets and shared memory at once, failing what is in flight.
   */
  abandon(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.stop();
    try {
      if (this.engine !== this.comm) this.engine.close();
    } finally {
      this.comm.close();
      this.store?.close();
    }
  }

  private readonly pending = new Set<Promise<unknown>>();

  private allgatherOutput<T extends CommArray>(input: T): T {
    const Ctor = input.constructor as new (n: number) => T;
    return new Ctor(input.length * this.size);
  }

  private wireCode(compression: Compression = this.compression): number {
    const code = COMPRESSIONS.indexOf(compression);
    if (code < 0) throw new TypeError(`unicc: unknown compression '${compression}' (${COMPRESSIONS.join(", ")})`);
    return code;
  }

  private checkRoot(root = 0): number {
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      throw new RangeError(`unicc: root ${root} is not a rank of this world (0..${this.size - 1})`);
    return root;
  }

  /** Throws if the world is closed or a pending collective still uses part of one of the arrays. */
  private checkFree(what: string, arrays: CommArray[]): void {
    if (this.closed) throw new UniccError(`unicc: ${what} on rank ${this.rank} after close()`);
    if (this.inFlight.size === 0) return;
    for (const a of arrays) {
      const start = a.byteOffset, end = a.byteOffset + a.byteLength;
      for (const f of this.inFlight)
        if (f.buffer === a.buffer && start < f.end && f.start < end && end > start)
          throw new UniccError(
            `unicc: rank ${this.rank} passed ${what} an array that a pending ${f.what} is still using; await that collective before touching its array`,
          );
    }
  }

  /** submit: as NativeComm.submit, unsynchronised: finished already (undefined or its error) or a promise. */
  private start<R>(what: string, arrays: CommArray[], submit: () => Promise<void> | string | undefined, result: R): Promise<R> {
    let p: Promise<void> | string | undefined;
    try {
      this.checkFree(what, arrays);
      p = submit();
    } catch (e) {
      return Promise.reject(e);
    }
    // Finished on this thread (a small collective whose peers were there): nothing to claim or
    // react to, each of which costs about as much as a 1 KiB allreduce on one host.
    if (typeof p !== "object") return p === undefined ? Promise.resolve(result) : Promise.reject(new UniccError(p));
    // The core's thread works on the arrays until p settles (no JavaScript ran since the check).
    const claims = arrays.map((a) => ({ buffer: a.buffer, start: a.byteOffset, end: a.byteOffset + a.byteLength, what }));
    claims.forEach((c) => this.inFlight.add(c));
    const settle = () => {
      claims.forEach((c) => this.inFlight.delete(c));
      this.pending.delete(tracked);
    };
    const tracked: Promise<R> = p.then(
      () => {
        settle();
        return result;
      },
      (e: Error) => {
        settle();
        throw new UniccError(e.message);
      },
    );
    this.pending.add(tracked);
    return tracked;
  }

  private startSync(what: string, arrays: CommArray[], submit: () => void): void {
    // Nothing else starts on this thread before submit returns, so a blocking call claims nothing:
    // it only checks that no pending call holds its arrays (a few hundred ns saved per call).
    this.checkFree(what, arrays);
    try {
      submit();
    } catch (e) {
      throw e instanceof TypeError || e instanceof RangeError ? e : new UniccError((e as Error).message);
    }
  }
}

function checkName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0)
    throw new TypeError(`unicc: allreduce name must be a non-empty string, got ${JSON.stringify(name)}`);
  return name;
}

function opCode(op: ReduceOp = "sum"): number {
  const code = OPS[op];
  if (code === undefined) throw new TypeError(`unicc: unknown reduce op '${op}' (sum, average, min, max, product)`);
  return code;
}

/** Joins the job described by the environment (see README: "Environment"). */
export async function init(opts: InitOptions = {}): Promise<World> {
  const env = readEnv(opts.env ?? process.env);
  if (env.elastic) return initElastic(env, opts);
  if (env.size === 1) return solo(env);

  let server: StoreServer | undefined;
  if (env.hostsStore && !opts.store && !env.rendezvous) {
    const { host, port } = splitHostPort(env.storeAddr);
    server = await StoreServer.listen(host, port, { token: env.token });
  }
  let store: RendezvousStore | undefined;
  try {
    store = opts.store ?? (await connectStore(env));
    // Each init of the same job gets fresh keys, so a world can be closed and made again.
    const gen = await store.add(`unicc/init-count/${env.rank}`, 1);
    return await formWorld(env, store, server, `unicc/${gen}/`, String(gen), undefined, opts.clientLane);
  } catch (e) {
    store?.close();
    await server?.close();
    throw e;
  }
}

function connectStore(env: RankEnv): Promise<RendezvousStore> {
  return env.rendezvous
    ? EtcdStore.connect(env.rendezvous.url, { timeoutMs: env.timeoutMs, ttlS: env.rendezvous.ttlS, jobId: env.jobId })
    : StoreClient.connect(env.storeAddr, { timeoutMs: env.timeoutMs, token: env.token });
}

function engineOptions(env: RankEnv) {
  return { ...env.engine, autotune: env.engine.autotune && env.size > 1 };
}

function nativeComm(env: RankEnv, jobId: string, clientLane = false): NativeComm {
  const { Comm } = loadAddon();
  return new Comm({ rank: env.rank, size: env.size, jobId, token: env.token, timeoutMs: env.timeoutMs, ...env.tuning, clientLane });
}

/** A world of one rank: no store, no peers (in an elastic job, the store still says who comes next). */
function solo(env: RankEnv, store?: RendezvousStore, watch?: GenerationWatch): World {
  const comm = nativeComm(env, `${env.jobId ?? "solo"}${watch ? `-e${watch.gen}` : ""}`);
  const topo = comm.setPeers([{ host: env.hostId ?? hostname(), addr: "", port: 0, pid: process.pid }]);
  comm.startEngine(engineOptions(env));
  return new World(comm, comm, env, topo, store, undefined, watch);
}

/** Consecutive failures to form a world, other than its generation being replaced, before init gives up. */
const ELASTIC_FORM_TRIES = 3;

/**
 * Elastic jobs: joins the first generation after `opts.after` that lists this worker, and forms
 * that generation's world; a generation replaced while forming (a rank was lost meanwhile) is
 * left for the next one.
 */
async function initElastic(env: RankEnv, opts: InitOptions): Promise<World> {
  const store = opts.store ?? (await connectStore(env));
  let after = opts.after ?? -1;
  let failures = 0;
  try {
    for (;;) {
      const place = await joinGeneration(store, env.elastic!.id, after, env.timeoutMs);
      const watch = new GenerationWatch(store, place.gen);
      const placed: RankEnv = { ...env, rank: place.rank, size: place.size };
      try {
        if (place.size === 1) return solo(placed, store, watch);
        return await formWorld(placed, watch.guard(store), undefined, ELASTIC_KEYS.formation(place.gen), `e${place.gen}`, watch);
      } catch (e) {
        watch.stop();
        if (!(e instanceof Superseded) && (e instanceof TypeError || ++failures >= ELASTIC_FORM_TRIES)) throw e;
        after = place.gen;
      }
    }
  } catch (e) {
    store.close();
    throw e;
  }
}

/**
 * Forms the world of env.rank of env.size through the store, under keys that begin with prefix
 * (the core does it: src/native/world/formation.h). A store's own failure (a key that never came,
 * an elastic generation superseded) is thrown as the store threw it.
 */
async function formWorld(
  env: RankEnv,
  store: RendezvousStore,
  server: StoreServer | undefined,
  prefix: string,
  tag: string,
  watch?: GenerationWatch,
  clientLane = false,
): Promise<World> {
  const t = env.timeoutMs;
  const lanes: NativeComm[] = [];
  try {
    let jobId = env.jobId;
    if (!jobId) {
      if (env.rank === 0) await store.set(`${prefix}job-id`, Buffer.from(randomBytes(8).toString("hex")));
      jobId = (await store.get(`${prefix}job-id`, t)).toString();
    }
    // Two lanes with their own sockets, shared memory and thread: calls in program order, and the
    // engine's named requests, which it orders by negotiation. Neither waits behind the other.
    for (const lane of ["", "e"]) lanes.push(nativeComm(env, `${jobId}-${tag}${lane}`, clientLane && lane === ""));
    const storeErrors: unknown[] = [];
    const call: NativeStoreCall = (op, key, arg) =>
      (op === "set" ? store.set(key, arg as Buffer) : store.get(key, arg as number)).catch((e: unknown) => {
        storeErrors.push(e);
        throw e;
      });
    const formation = { keyPrefix: prefix, addr: env.hostAddr ?? store.localAddress, hostId: env.hostId ?? "", probePrefix: `unicc-${jobId}-${tag}`, timeoutMs: t };
    await lanes[0].formWorld(call, lanes.slice(1), formation).catch((e: unknown) => {
      throw storeErrors[0] ?? e;
    });
    lanes[1].startEngine(engineOptions(env));
    const world = new World(lanes[0], lanes[1], env, lanes[0].topology(), store, server, watch);
    await world.barrier();
    return world;
  } catch (e) {
    lanes.forEach((c) => c.close());
    throw e;
  }
}
