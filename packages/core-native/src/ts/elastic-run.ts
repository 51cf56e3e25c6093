// Elastic jobs in TypeScript (the Python client's equivalent is python/unicc/elastic.py): a World
// that re-forms, and the run wrapper that re-forms it, puts back the last commit and syncs it from
// the new rank 0 whenever a peer is lost or hosts join.
import { init, UniccError, type AllreduceOptions, type CommArray, type InitOptions, type World } from "./world.js";

/** Thrown by a state's commit() on every rank at once when the launcher re-forms the world (hosts joined). */
export class HostsChanged extends Error {
  constructor() {
    super("unicc: the launcher re-forms the world (hosts changed)");
    this.name = "HostsChanged";
  }
}

/**
 * The world of the current generation behind one object that stays the same across re-formings,
 * so that what holds it (an optimizer, a state) sees the new rank and size afterwards.
 */
export class ElasticWorld {
  private constructor(
    private current: World,
    private readonly opts: InitOptions,
  ) {}

  /** init() for an elastic job (also works in a static one, which then never re-forms). */
  static async init(opts: InitOptions = {}): Promise<ElasticWorld> {
    return new ElasticWorld(await init(opts), opts);
  }

  get world(): World {
    return this.current;
  }
  get rank(): number {
    return this.current.rank;
  }
  get size(): number {
    return this.current.size;
  }
  get localRank(): number {
    return this.current.localRank;
  }
  get localSize(): number {
    return this.current.localSize;
  }
  get generation(): number {
    return this.current.generation;
  }

  allreduce<T extends CommArray>(buf: T, opts?: AllreduceOptions): Promise<T> {
    return this.current.allreduce(buf, opts);
  }
  allreduceSync<T extends CommArray>(buf: T, opts?: Omit<AllreduceOptions, "name">): T {
    return this.current.allreduceSync(buf, opts);
  }
  allreduceNamedSync(entries: { name: string; buf: CommArray }[], opts?: Omit<AllreduceOptions, "name">): void {
    this.current.allreduceNamedSync(entries, opts);
  }
  broadcast<T extends CommArray>(buf: T, opts?: { root?: number }): Promise<T> {
    return this.current.broadcast(buf, opts);
  }
  broadcastSync<T extends CommArray>(buf: T, opts?: { root?: number }): T {
    return this.current.broadcastSync(buf, opts);
  }
  allgather<T extends CommArray>(input: T, output?: T): Promise<T> {
    return this.current.allgather(input, output);
  }
  allgatherSync<T extends CommArray>(input: T, output?: T): T {
    return this.current.allgatherSync(input, output);
  }
  barrier(): Promise<void> {
    return this.current.barrier();
  }
  membershipChangedAnywhere(): Promise<boolean> {
    return this.current.membershipChangedAnywhere();
  }

  /** Leaves this generation's world (what is in flight on it fails) and joins the next one. */
  async reform(): Promise<void> {
    const after = this.current.generation;
    this.current.abandon();
    this.current = await init({ ...this.opts, after });
  }

  close(): Promise<void> {
    return this.current.close();
  }
}

/** What runElastic needs of a state: put back the last commit, and make every rank's the root's. */
export interface ElasticState {
  restore(): void | Promise<void>;
  /** Collective: every rank's state (and its saved copy) becomes rank 0's. */
  sync(world: ElasticWorld): Promise<void>;
}

/**
 * Runs fn until it returns. When a peer is lost (a collective fails) or hosts join (commit()
 * throws HostsChanged), puts back the last commit, re-forms the world, syncs the state from the
 * new rank 0 (newcomers get it so) and calls fn again; a loss during the re-forming starts it over.
 * Rank and size may differ on each call: shard the data by world.rank and world.size.
 */
export async function runElastic<T>(
  world: ElasticWorld,
  state: ElasticState,
  fn: () => T | Promise<T>,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<T> {
  let reformed: { since: number; size: number; why: string } | undefined;
  for (;;) {
    try {
      await state.sync(world);
      if (reformed) {
        const s = ((performance.now() - reformed.since) / 1000).toFixed(2);
        log(`unicc: rank ${world.rank}: re-formed the world: ${reformed.size} -> ${world.size} ranks in ${s} s (generation ${world.generation}; ${reformed.why})`);
        reformed = undefined;
      }
      return await fn();
    } catch (e) {
      if (!(e instanceof HostsChanged) && !(e instanceof UniccError)) throw e;
      reformed ??= { since: performance.now(), size: world.size, why: (e as Error).message.split("\n")[0] };
    }
    await state.restore();
    await world.reform();
  }
}
