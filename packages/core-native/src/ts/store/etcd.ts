// The rendezvous store on etcd v3 (`UNICC_RENDEZVOUS=etcd://HOST:PORT/PREFIX`), for jobs that
// outgrow a store hosted by one of their ranks, or that already run etcd. It speaks etcd's JSON
// gateway (/v3/kv, /v3/lease) with Node's fetch, so nothing is installed for it. Every key a rank
// writes hangs on its own lease, kept alive while the rank lives: a dead rank's keys expire.
import { connect } from "node:net";

import type { RendezvousStore } from "./index.js";

const POLL_MS = [20, 50, 100, 200];

export interface EtcdTarget {
  host: string;
  port: number;
  prefix: string;
}

/** etcd://HOST:PORT/PREFIX, or an error saying what is wrong with it. */
export function parseEtcdUrl(url: string): EtcdTarget {
  const m = /^etcd:\/\/([^/:]+|\[[^\]]+\]):(\d{1,5})(\/[^\s]*)?$/.exec(url);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535)
    throw new Error(`unicc: UNICC_RENDEZVOUS=${url} is not etcd://HOST:PORT/PREFIX`);
  return { host: m[1].replace(/^\[(.*)\]$/, "$1"), port, prefix: (m[3] ?? "/unicc").replace(/\/+$/, "") || "/unicc" };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");

interface RangeReply {
  kvs?: { key?: string; value?: string; mod_revision?: string }[];
}

/** How often the launcher's watch of an elastic job's membership keys reads them. */
const WATCH_MS = 100;

export class EtcdStore implements RendezvousStore {
  private keepAlive: NodeJS.Timeout | undefined;
  private closed = false;
  /** put()s in order: an elastic job's generation must be there before the key naming it. */
  private puts: Promise<void> = Promise.resolve();

  private constructor(
    private readonly base: string,
    private readonly prefix: string,
    private readonly lease: string,
    readonly localAddress: string,
  ) {}

  /** Connects, learns this host's address toward etcd, and takes a lease of ttlS seconds. */
  static async connect(url: string, opts: { timeoutMs: number; ttlS: number; jobId?: string }): Promise<EtcdStore> {
    const t = parseEtcdUrl(url);
    const base = `http://${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
    const localAddress = await reachableAddress(t.host, t.port, opts.timeoutMs, url);
    const grant = (await call(base, "/v3/lease/grant", { TTL: opts.ttlS }, opts.timeoutMs)) as { ID?: string };
    if (!grant.ID) throw new Error(`unicc: etcd at ${url} granted no lease`);
    const store = new EtcdStore(base, `${t.prefix}/${opts.jobId ?? "job"}/`, grant.ID, localAddress);
    store.keepAlive = setInterval(() => {
      call(base, "/v3/lease/keepalive", { ID: grant.ID }, opts.timeoutMs).catch(() => undefined);
    }, Math.max(500, (opts.ttlS * 1000) / 3));
    store.keepAlive.unref();
    return store;
  }

  private k(key: string): string {
    return b64(this.prefix + key);
  }

  async set(key: string, value: Buffer): Promise<void> {
    await call(this.base, "/v3/kv/put", { key: this.k(key), value: b64(value), lease: this.lease });
  }

  async get(key: string, timeoutMs: number): Promise<Buffer> {
    const until = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      if (this.closed) throw new Error(`unicc: the etcd rendezvous store was closed while waiting for key '${key}'`);
      const r = (await call(this.base, "/v3/kv/range", { key: this.k(key) })) as RangeReply;
      const v = r.kvs?.[0]?.value;
      if (v !== undefined) return Buffer.from(v, "base64");
      if (Date.now() > until)
        throw new Error(`unicc: rendezvous key '${key}' was not set in etcd within ${timeoutMs} ms (did every rank start?)`);
      await new Promise((r2) => setTimeout(r2, POLL_MS[Math.min(i, POLL_MS.length - 1)]));
    }
  }

  /** Adds delta to a counter with a compare-and-swap on its revision (or on its absence). */
  async add(key: string, delta: number): Promise<number> {
    for (;;) {
      const r = (await call(this.base, "/v3/kv/range", { key: this.k(key) })) as RangeReply;
      const kv = r.kvs?.[0];
      const next = (kv?.value ? Number(Buffer.from(kv.value, "base64").toString()) : 0) + delta;
      const compare = kv
        ? { key: this.k(key), target: "MOD", result: "EQUAL", mod_revision: kv.mod_revision }
        : { key: this.k(key), target: "CREATE", result: "EQUAL", create_revision: "0" };
      const put = { request_put: { key: this.k(key), value: b64(String(next)), lease: this.lease } };
      const txn = (await call(this.base, "/v3/kv/txn", { compare: [compare], success: [put] })) as { succeeded?: boolean };
      if (txn.succeeded) return next;
    }
  }

  /**
   * For the launcher of an elastic job (what StoreServer.put is for the launcher's own store): sets
   * a key, in order with earlier put()s; a failure goes to onError.
   */
  put(key: string, value: Buffer, onError: (e: Error) => void): void {
    this.puts = this.puts.then(() => this.set(key, value)).catch(onError);
  }

  /**
   * For the launcher (as StoreServer.watch): calls fn for every key under prefix that is new or
   * changed, read every WATCH_MS (etcd's JSON gateway streams watches, which fetch cannot end
   * cleanly; a poll of one range is cheap). Returns the unwatch.
   */
  watch(prefix: string, fn: (key: string, value: Buffer) => void): () => void {
    const seen = new Map<string, string>();
    const from = this.prefix + prefix;
    const end = Buffer.from(from);
    end[end.length - 1]++; // the range [from, end) is every key starting with from
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const tick = async () => {
      try {
        const r = (await call(this.base, "/v3/kv/range", { key: b64(from), range_end: end.toString("base64") })) as RangeReply;
        for (const kv of r.kvs ?? []) {
          const key = Buffer.from(kv.key ?? "", "base64").toString().slice(this.prefix.length);
          if (stopped || seen.get(key) === kv.mod_revision) continue;
          seen.set(key, kv.mod_revision ?? "");
          fn(key, Buffer.from(kv.value ?? "", "base64"));
        }
      } catch {
        // etcd briefly unreachable: the next read catches up (the rounds have their own bounds)
      }
      if (!stopped) timer = setTimeout(tick, WATCH_MS);
    };
    void tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  /** Stops renewing the lease: the keys stay for its TTL (peers may still read them), then go. Waits end. */
  close(): void {
    this.closed = true;
    clearInterval(this.keepAlive);
  }
}

async function call(base: string, path: string, body: object, timeoutMs = 10_000): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(base + path, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    throw new Error(`unicc: etcd at ${base} did not answer ${path}: ${(e as Error).cause ?? (e as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new Error(`unicc: etcd at ${base} refused ${path}: ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

/** The address of this host that etcd sees, i.e. one its peers can reach too; fails clearly if nobody listens. */
function reachableAddress(host: string, port: number, timeoutMs: number, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, timeout: timeoutMs });
    s.once("connect", () => {
      const addr = s.localAddress ?? "127.0.0.1";
      s.destroy();
      resolve(addr);
    });
    const fail = (why: string) => {
      s.destroy();
      reject(new Error(`unicc: cannot reach the etcd rendezvous at ${url}: ${why}; is etcd running there?`));
    };
    s.once("timeout", () => fail(`no answer within ${timeoutMs} ms`));
    s.once("error", (e) => fail(e.message));
  });
}
