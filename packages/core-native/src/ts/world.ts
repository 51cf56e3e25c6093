import { randomBytes } from "node:crypto";

import { readEnv, type RankEnv } from "./env.js";
import { loadAddon, type NativeComm, type NativePeer, type NativeTopology } from "./native.js";
import { splitHostPort, StoreClient, StoreServer, type RendezvousStore } from "./store/index.js";

/** Arrays the core works on in place. */
export type CommArray = Float32Array | Float64Array | Int32Array | BigInt64Array;

export type ReduceOp = "sum" | "average" | "avg" | "min" | "max" | "product" | "prod";

const COLL = { allreduce: 0, broadcast: 1, allgather: 2, barrier: 3 } as const;
const OPS: Record<ReduceOp, number> = { sum: 0, average: 1, avg: 1, min: 2, max: 3, product: 4, prod: 4 };

export interface InitOptions {
  /** Overrides for the variables read by readEnv (tests, embedding). */
  env?: NodeJS.ProcessEnv;
  /** Another rendezvous backend instead of the embedded store (which it then neither hosts nor dials). */
  store?: RendezvousStore;
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

  /** @internal use init() */
  constructor(
    private readonly comm: NativeComm,
    env: RankEnv,
    topo: NativeTopology,
    private readonly store: RendezvousStore | undefined,
    private readonly storeServer: StoreServer | undefined,
  ) {
    this.rank = env.rank;
    this.size = env.size;
    this.localRank = topo.localRank;
    this.localSize = topo.localSize;
    this.algorithm =
      env.size === 1 ? "single" : topo.numHosts === 1 ? "shm" : topo.hierarchical ? "hierarchical" : "ring";
  }

  /** Reduces `buf` across ranks in place; every rank ends with the same result. */
  allreduce<T extends CommArray>(buf: T, opts: { op?: ReduceOp } = {}): Promise<T> {
    return this.start("allreduce", [buf], () => this.comm.submit(COLL.allreduce, buf, opCode(opts.op), 0, undefined, false)!).then(() => buf);
  }

  /** Blocking allreduce, for callers that must stay synchronous; it still runs on the core's thread. */
  allreduceSync<T extends CommArray>(buf: T, opts: { op?: ReduceOp } = {}): T {
    this.startSync("allreduce", [buf], () => this.comm.submit(COLL.allreduce, buf, opCode(opts.op), 0, undefined, true));
    return buf;
  }

  /** Copies `buf` of rank `root` into `buf` of every rank. */
  broadcast<T extends CommArray>(buf: T, opts: { root?: number } = {}): Promise<T> {
    return this.start("broadcast", [buf], () => this.comm.submit(COLL.broadcast, buf, 0, this.checkRoot(opts.root), undefined, false)!).then(() => buf);
  }

  broadcastSync<T extends CommArray>(buf: T, opts: { root?: number } = {}): T {
    this.startSync("broadcast", [buf], () => this.comm.submit(COLL.broadcast, buf, 0, this.checkRoot(opts.root), undefined, true));
    return buf;
  }

  /** Concatenates every rank's `input` in rank order into `output` (size x input.length elements). */
  allgather<T extends CommArray>(input: T, output?: T): Promise<T> {
    const out = output ?? this.allgatherOutput(input);
    return this.start("allgather", [input, out], () => this.comm.submit(COLL.allgather, input, 0, 0, out, false)!).then(() => out);
  }

  allgatherSync<T extends CommArray>(input: T, output?: T): T {
    const out = output ?? this.allgatherOutput(input);
    this.startSync("allgather", [input, out], () => this.comm.submit(COLL.allgather, input, 0, 0, out, true));
    return out;
  }

  /** Resolves once every rank has called barrier. */
  barrier(): Promise<void> {
    return this.start("barrier", [], () => this.comm.submit(COLL.barrier, undefined, 0, 0, undefined, false)!);
  }

  barrierSync(): void {
    this.startSync("barrier", [], () => this.comm.submit(COLL.barrier, undefined, 0, 0, undefined, true));
  }

  /** Waits for collectives in flight, then releases the core's thread, sockets and shared memory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.inFlight.size) await Promise.allSettled([...this.pending]);
    this.comm.close();
    this.store?.close();
    await this.storeServer?.close();
  }

  private readonly pending = new Set<Promise<void>>();

  private allgatherOutput<T extends CommArray>(input: T): T {
    const Ctor = input.constructor as new (n: number) => T;
    return new Ctor(input.length * this.size);
  }

  private checkRoot(root = 0): number {
    if (!Number.isInteger(root) || root < 0 || root >= this.size)
      throw new RangeError(`unicc: root ${root} is not a rank of this world (0..${this.size - 1})`);
    return root;
  }

  private claim(what: string, arrays: CommArray[]): InFlight[] {
    if (this.closed) throw new UniccError(`unicc: ${what} on rank ${this.rank} after close()`);
    const claims = arrays.map((a) => ({ buffer: a.buffer, start: a.byteOffset, end: a.byteOffset + a.byteLength, what }));
    for (const c of claims)
      for (const f of this.inFlight)
        if (f.buffer === c.buffer && c.start < f.end && f.start < c.end && c.end > c.start)
          throw new UniccError(
            `unicc: rank ${this.rank} passed ${what} an array that a pending ${f.what} is still using; await that collective before touching its array`,
          );
    claims.forEach((c) => this.inFlight.add(c));
    return claims;
  }

  private start(what: string, arrays: CommArray[], submit: () => Promise<void>): Promise<void> {
    let claims: InFlight[] = [];
    let p: Promise<void>;
    try {
      claims = this.claim(what, arrays);
      p = submit();
    } catch (e) {
      claims.forEach((c) => this.inFlight.delete(c));
      return Promise.reject(e);
    }
    const tracked: Promise<void> = p.then(
      () => undefined,
      (e: Error) => {
        throw new UniccError(e.message);
      },
    ).finally(() => {
      claims.forEach((c) => this.inFlight.delete(c));
      this.pending.delete(tracked);
    });
    this.pending.add(tracked);
    return tracked;
  }

  private startSync(what: string, arrays: CommArray[], submit: () => void): void {
    const claims = this.claim(what, arrays);
    try {
      submit();
    } catch (e) {
      throw e instanceof TypeError || e instanceof RangeError ? e : new UniccError((e as Error).message);
    } finally {
      claims.forEach((c) => this.inFlight.delete(c));
    }
  }
}

function opCode(op: ReduceOp = "sum"): number {
  const code = OPS[op];
  if (code === undefined) throw new TypeError(`unicc: unknown reduce op '${op}' (sum, average, min, max, product)`);
  return code;
}

/** Joins the job described by the environment (see README: "Environment"). */
export async function init(opts: InitOptions = {}): Promise<World> {
  const env = readEnv(opts.env ?? process.env);
  const { Comm } = loadAddon();
  const native = (jobId: string) =>
    new Comm({ rank: env.rank, size: env.size, jobId, token: env.token, timeoutMs: env.timeoutMs, ...env.tuning });
  if (env.size === 1) {
    const comm = native(env.jobId ?? "solo");
    const topo = comm.setPeers([{ host: env.hostId, addr: "", port: 0, pid: process.pid }]);
    return new World(comm, env, topo, undefined, undefined);
  }

  let server: StoreServer | undefined;
  if (env.hostsStore && !opts.store) {
    const { host, port } = splitHostPort(env.storeAddr);
    server = await StoreServer.listen(host, port, { token: env.token });
  }
  const store = opts.store ?? (await StoreClient.connect(env.storeAddr, { timeoutMs: env.timeoutMs, token: env.token }));
  const t = env.timeoutMs;
  let comm: NativeComm | undefined;
  try {
    // Each init of the same job gets fresh keys, so a world can be closed and made again.
    const gen = await store.add(`unicc/init-count/${env.rank}`, 1);
    const key = (k: string) => `unicc/${gen}/${k}`;
    let jobId = env.jobId;
    if (!jobId) {
      if (env.rank === 0) await store.set(key("job-id"), Buffer.from(randomBytes(8).toString("hex")));
      jobId = (await store.get(key("job-id"), t)).toString();
    }
    comm = native(`${jobId}-${gen}`);
    const addr = env.hostAddr ?? store.localAddress;
    const me: NativePeer = { host: env.hostId, addr, port: comm.listen(addr), pid: process.pid };
    await store.set(key(`peer/${env.rank}`), Buffer.from(JSON.stringify(me)));
    const peers: NativePeer[] = [];
    for (let r = 0; r < env.size; r++) peers.push(JSON.parse((await store.get(key(`peer/${r}`), t)).toString()));
    const topo = comm.setPeers(peers);

    if (topo.usesShm) {
      // The first rank of a host makes the segment; once all have mapped it, its name goes away,
      // so no crash can leave it behind.
      const made = key(`shm-made/${topo.hostIndex}`);
      if (topo.localRank === 0) {
        comm.openShm(true);
        await store.set(made, Buffer.from("1"));
        for (let lr = 1; lr < topo.localSize; lr++) await store.get(key(`shm-mapped/${topo.hostIndex}/${lr}`), t);
        comm.unlinkShm();
      } else {
        await store.get(made, t);
        comm.openShm(false);
        await store.set(key(`shm-mapped/${topo.hostIndex}/${topo.localRank}`), Buffer.from("1"));
      }
    }
    await comm.connect();
    const world = new World(comm, env, topo, store, server);
    await world.barrier();
    return world;
  } catch (e) {
    comm?.close();
    store.close();
    await server?.close();
    throw e;
  }
}
