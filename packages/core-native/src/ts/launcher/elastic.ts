// Elastic jobs, the launcher's side (`unicc run --min-np A --max-np B`): the launcher keeps the
// membership in its store as generations (the rank's side and the keys: ../elastic.ts). A rank's
// death, or a rank whose world failed, ends the current generation: the survivors ask for the
// next one, and once every live member has asked (or the round's time is up: the silent ones are
// stopped and count as lost), the launcher publishes it with new dense ranks. Workers the host
// discovery script added ask too; they make the members leave at their next commit. Workers on
// slots the script stops listing leave the same way, and are stopped once the others have left.
import { ELASTIC_KEYS } from "../elastic.js";
import type { StoreServer } from "../store/index.js";
import type { ElasticLaunch } from "./options.js";

export interface ElasticWorker {
  id: string;
  /** Host name, for messages. */
  host: string;
  pid?: number;
  /** Stops the worker's process group (a worker that did not come back in time). */
  kill(): void;
}

interface Tracked {
  w: ElasticWorker;
  alive: boolean;
  /** The last generation it is a member of (-1: none yet). */
  joined: number;
  /** It asked for a generation after this one. */
  want?: number;
  /** Order of first start, which ranks newcomers after the survivors. */
  order: number;
  /** Its slot is no longer listed: it is left out of the next generation and stopped. */
  leaving?: boolean;
}

interface Round {
  reason: "start" | "lost" | "joined" | "removed";
  /** Armed once the round cannot wait for commits any more (a member left its world or died). */
  timer?: NodeJS.Timeout;
}

export interface ElasticDeps {
  /** Where the ranks meet: the launcher's own store, or etcd with --rendezvous. */
  store: Pick<StoreServer, "put" | "watch">;
  /** How long a round waits for live members to ask for the next generation. */
  roundMs: number;
  /** How long the first round waits for every worker to connect (--start-timeout). */
  startMs: number;
  log(line: string): void;
  /** Ends the job (stops every rank) with this message. */
  fail(message: string): void;
}

/** Keeps an elastic job's membership; the launcher reports workers' starts and exits to it. */
export class ElasticMembership {
  private gen = 0;
  private members: string[] = [];
  private readonly workers = new Map<string, Tracked>();
  private round: Round | undefined = { reason: "start" };
  private readonly lost: string[] = [];
  private ended = false;
  /** A member finished (exited 0): the job is ending, newcomers have nothing to join. */
  private finishing = false;
  private readonly unwatch: () => void;
  private readonly startTimer: NodeJS.Timeout;

  constructor(
    private readonly o: Pick<ElasticLaunch, "minNp" | "maxNp">,
    private readonly d: ElasticDeps,
  ) {
    this.unwatch = d.store.watch("unicc/elastic/want/", (key, value) => this.onWant(key.slice("unicc/elastic/want/".length), Number(value.toString())));
    this.startTimer = setTimeout(() => this.finishRound(true), d.startMs);
  }

  /** Whether new workers may still join (no member has finished yet). */
  get accepting(): boolean {
    return !this.ended && !this.finishing;
  }

  /** How many workers are alive (started, not exited). */
  get live(): number {
    return [...this.workers.values()].filter((t) => t.alive).length;
  }

  added(w: ElasticWorker): void {
    this.workers.set(w.id, { w, alive: true, joined: -1, order: this.workers.size });
  }

  /** A worker's process ended: `ok` if it exited 0 (it finished), else `what` says how it died. */
  exited(id: string, ok: boolean, what: string): void {
    const t = this.workers.get(id);
    if (!t || !t.alive) return;
    t.alive = false;
    if (this.ended) return;
    if (ok) {
      this.finishing ||= t.joined === this.gen;
      return this.finishedIfDone();
    }
    const member = t.joined === this.gen && this.gen > 0;
    this.lost.push(`${this.describe(t)} ${what}`);
    if (member || this.round) {
      this.d.log(`unicc: ${this.describe(t)} ${what}; re-forming the world without it`);
      this.startRound("lost", true);
    }
    this.check();
  }

  /** Once the last generation's members have all finished, workers still waiting to join have nothing to join. */
  private finishedIfDone(): void {
    const all = [...this.workers.values()];
    if (this.gen === 0 || all.some((t) => t.alive && t.joined === this.gen)) return;
    this.ended = true;
    for (const t of all) if (t.alive) t.w.kill();
  }

  /**
   * The discovery script no longer lists these workers' slots. Members leave with the others at
   * their next commit (so nothing committed is lost) and are then stopped; workers not yet in a
   * generation are stopped at once.
   */
  remove(ids: string[]): void {
    if (this.ended) return;
    for (const id of ids) {
      const t = this.workers.get(id);
      if (!t || !t.alive || t.leaving) continue;
      t.leaving = true;
      if (t.joined === this.gen && this.gen > 0) {
        this.d.log(`unicc: ${this.describe(t)}: its slot is no longer listed; it leaves at the next commit`);
        this.startRound("removed", false);
      } else this.stop(t);
    }
    this.check();
  }

  /** Stops a worker that is not to be in the next generation. */
  private stop(t: Tracked): void {
    if (t.leaving) this.lost.push(`${this.describe(t)} was on a slot the discovery script no longer lists`);
    t.alive = false;
    t.w.kill();
  }

  /** Stops watching the store and every timer. */
  close(): void {
    this.ended = true;
    this.unwatch();
    clearTimeout(this.startTimer);
    clearTimeout(this.round?.timer);
  }

  private describe(t: Tracked): string {
    const rank = t.joined === this.gen && this.gen > 0 ? `rank ${this.members.indexOf(t.w.id)} of generation ${this.gen}, ` : "";
    return `worker ${t.w.id} (${rank}host ${t.w.host}${t.w.pid ? `, pid ${t.w.pid}` : ""})`;
  }

  private onWant(id: string, after: number): void {
    const t = this.workers.get(id);
    if (!t || !t.alive || this.ended || !Number.isInteger(after)) return;
    t.want = after;
    if (t.joined === this.gen && this.gen > 0) this.startRound(this.round?.reason ?? "lost", true);
    else if (t.joined < 0 && !this.round && !this.finishing && this.members.length < this.o.maxNp) this.startRound("joined", false);
    this.check();
  }

  /** Marks the current generation replaced; `urgent`: its members cannot go on, so the round's clock runs. */
  private startRound(reason: Round["reason"], urgent: boolean): void {
    if (!this.round) {
      this.round = { reason };
      this.d.store.put(ELASTIC_KEYS.next(this.gen), Buffer.from(reason));
    }
    if (urgent && this.gen > 0 && !this.round.timer) this.round.timer = setTimeout(() => this.finishRound(true), this.d.roundMs);
  }

  private ready(t: Tracked): boolean {
    return t.alive && t.want !== undefined && t.want >= t.joined;
  }

  /** Those the round waits for: live members (the first round: every live worker). */
  private expected(): Tracked[] {
    const all = [...this.workers.values()].filter((t) => t.alive);
    return this.gen === 0 ? all : all.filter((t) => t.joined === this.gen);
  }

  private check(): void {
    if (this.round && !this.ended && this.expected().every((t) => this.ready(t))) this.finishRound(false);
  }

  private finishRound(timedOut: boolean): void {
    if (!this.round || this.ended) return;
    clearTimeout(this.round.timer);
    clearTimeout(this.startTimer);
    const late = this.expected().filter((t) => !this.ready(t));
    const missing = this.gen ? `did not rejoin within ${Math.round(this.d.roundMs / 1000)} s (--timeout)` : `did not connect within ${Math.round(this.d.startMs / 1000)} s (--start-timeout)`;
    for (const t of late) {
      if (!t.leaving) this.lost.push(`${this.describe(t)} ${missing}`);
      this.stop(t);
    }
    if (timedOut && late.length) this.d.log(`unicc: stopped ${late.map((t) => this.describe(t)).join(", ")}: ${missing.replace(/^did not/, "they did not")}`);
    const leavers = [...this.workers.values()].filter((t) => t.leaving && this.ready(t));
    if (leavers.length) this.d.log(`unicc: stopped ${leavers.map((t) => this.describe(t)).join(", ")}: slot no longer listed`);
    leavers.forEach((t) => this.stop(t));
    const ready = [...this.workers.values()].filter((t) => this.ready(t));
    const rankOf = (t: Tracked) => (t.joined === this.gen && this.gen > 0 ? this.members.indexOf(t.w.id) : this.members.length + t.order);
    const next = ready.sort((a, b) => rankOf(a) - rankOf(b)).slice(0, this.o.maxNp);
    this.round = undefined;
    if (next.length < this.o.minNp) {
      this.ended = true;
      const what = this.lost.length ? `; lost: ${this.lost.join("; ")}` : "";
      this.d.fail(`unicc: elastic job ended: ${next.length} rank${next.length === 1 ? "" : "s"} left, fewer than --min-np ${this.o.minNp}${what}`);
      return;
    }
    const joined = next.filter((t) => t.joined < 0).length;
    this.gen++;
    this.members = next.map((t) => t.w.id);
    for (const t of next) t.joined = this.gen;
    this.d.store.put(ELASTIC_KEYS.world(this.gen), Buffer.from(JSON.stringify({ gen: this.gen, members: this.members })));
    this.d.store.put(ELASTIC_KEYS.current, Buffer.from(String(this.gen)));
    if (this.gen > 1) this.d.log(`unicc: generation ${this.gen}: ${next.length} ranks${joined ? ` (${joined} joined)` : ""}`);
    // Newcomers that asked meanwhile, beyond this round, start the next one.
    const waiting = [...this.workers.values()].some((t) => t.joined < 0 && this.ready(t));
    if (waiting && this.members.length < this.o.maxNp) this.startRound("joined", false);
  }
}
