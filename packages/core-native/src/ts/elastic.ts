// Elastic jobs, the rank's side (the launcher's is launcher/elastic.ts). Membership lives in the
// rendezvous store as generations: generation g is a list of worker ids, published once by the
// launcher; a worker's rank in g is its place in that list. Each generation forms its world under
// keys of its own (unicc/e<g>/...), so an old world and a new one never meet. A worker asks to be
// in the next generation by writing its `want` key; the launcher marks a generation `next` once
// it will be replaced (a member died or asked to leave it, or hosts joined).
import type { RendezvousStore } from "./store/index.js";

export const ELASTIC_KEYS = {
  /** The newest generation published (a decimal number). */
  current: "unicc/elastic/current",
  /** Generation g: JSON {gen, members: worker ids in rank order}. */
  world: (g: number) => `unicc/elastic/world/${g}`,
  /** Worker `id` asks to be in a generation after the one this key holds (-1: it is new). */
  want: (id: string) => `unicc/elastic/want/${id}`,
  /** Set once generation g is to be replaced; its value says why ("lost" or "joined"). */
  next: (g: number) => `unicc/elastic/next/${g}`,
  /** Prefix of the world-formation keys of generation g. */
  formation: (g: number) => `unicc/e${g}/`,
} as const;

export interface Generation {
  gen: number;
  members: string[];
}

/** This worker's place in a generation it is a member of. */
export interface ElasticPlace extends Generation {
  rank: number;
  size: number;
}

/** The generation a world was being formed for has been replaced: join the next one instead. */
export class Superseded extends Error {
  constructor(readonly gen: number) {
    super(`unicc: generation ${gen} was replaced while its world was forming`);
  }
}

/**
 * Registers worker `id` for a generation after `after` and waits for the first published one
 * that lists it. A newcomer waits for the members' next commit, however far off: the launcher
 * bounds that wait (it stops workers that are left waiting when the job ends).
 */
export async function joinGeneration(store: RendezvousStore, id: string, after: number, timeoutMs: number): Promise<ElasticPlace> {
  await store.set(ELASTIC_KEYS.want(id), Buffer.from(String(after)));
  const current = Number((await waitFor(store, ELASTIC_KEYS.current, timeoutMs)).toString());
  for (let g = Math.max(after + 1, current); ; g++) {
    const gen = JSON.parse((await waitFor(store, ELASTIC_KEYS.world(g), timeoutMs)).toString()) as Generation;
    const rank = gen.members.indexOf(id);
    if (rank >= 0) return { ...gen, rank, size: gen.members.length };
  }
}

/** A store's "this key did not come in time" (the launcher's store, or etcd), as opposed to a closed store. */
const KEY_TIMEOUT = /did not appear|was not set in etcd within/;

/** Waits for a key in slices of timeoutMs, for as long as the store lives. */
async function waitFor(store: RendezvousStore, key: string, timeoutMs: number): Promise<Buffer> {
  for (;;) {
    try {
      return await store.get(key, timeoutMs);
    } catch (e) {
      if (!KEY_TIMEOUT.test((e as Error).message)) throw e;
    }
  }
}

/**
 * Watches whether generation `gen` has been replaced: `replaced` says so at once, `doomed` rejects
 * with Superseded when it happens. The watch is one waiting get, renewed, so it costs nothing
 * while the generation lives; stop() ends it.
 */
export class GenerationWatch {
  replaced = false;
  readonly doomed: Promise<never>;
  private stopped = false;

  constructor(
    private readonly store: RendezvousStore,
    readonly gen: number,
  ) {
    this.doomed = this.wait();
    this.doomed.catch(() => undefined); // only formations await it
  }

  private async wait(): Promise<never> {
    for (;;) {
      try {
        await this.store.get(ELASTIC_KEYS.next(this.gen), 3_600_000);
        this.replaced = true;
        throw new Superseded(this.gen);
      } catch (e) {
        // A closed store (stop(), or the launcher gone) ends the watch; a mere timeout renews it.
        if (e instanceof Superseded || this.stopped || !KEY_TIMEOUT.test((e as Error).message)) throw e;
      }
    }
  }

  /** A store whose waits fail with Superseded once this generation is replaced. */
  guard(store: RendezvousStore): RendezvousStore {
    const doomed = this.doomed;
    return {
      localAddress: store.localAddress,
      set: (k, v) => store.set(k, v),
      add: (k, d) => store.add(k, d),
      get: (k, t) => Promise.race([store.get(k, t), doomed]),
      close: () => store.close(),
    };
  }

  stop(): void {
    this.stopped = true;
  }
}
