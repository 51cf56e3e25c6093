import { connect as netConnect, type Socket } from "node:net";

import { answerChallenge, CHALLENGE_BYTES } from "../auth.js";
import {
  AUTH_HELLO,
  AUTH_OK,
  AUTH_PURPOSE,
  AUTH_TIMEOUT_MS,
  encodeRequest,
  FrameReader,
  i64,
  MAX_TIMEOUT_MS,
  Op,
  parseResponse,
  u32,
} from "./protocol.js";

interface Pending {
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

const RETRY_MS = 100;

/** "host:port" or "[v6]:port" into its parts; the one parser of store addresses. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(":");
  const port = Number(addr.slice(i + 1));
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  if (i <= 0 || !host || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`unicc: store address '${addr}' is not host:port`);
  return { host, port };
}

function tryConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port, timeout: timeoutMs });
    s.once("connect", () => {
      s.setTimeout(0);
      resolve(s);
    });
    s.once("timeout", () => {
      s.destroy();
      reject(new Error("connect timed out"));
    });
    s.once("error", reject);
  });
}

/** Thrown when the store is reached but refuses this process's job token: retrying cannot help. */
class TokenRefused extends Error {}

/** Reads exactly n bytes from a fresh socket (nothing else is listening yet), or fails at the deadline. */
function readExactly(s: Socket, n: number, timeoutMs: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let have = 0;
    const finish = (e?: Error) => {
      clearTimeout(timer);
      s.off("data", onData);
      s.off("close", onClose);
      s.off("error", onError);
      if (e) {
        s.destroy();
        reject(e);
      } else resolve(Buffer.concat(got, have));
    };
    const onData = (chunk: Buffer) => {
      got.push(chunk);
      have += chunk.length;
      if (have >= n) finish();
    };
    const onClose = () => finish(new TokenRefused(`it closed the connection while waiting for ${what}`));
    const onError = (e: Error) => finish(new TokenRefused(`the connection failed while waiting for ${what} (${e.message})`));
    const timer = setTimeout(() => finish(new TokenRefused(`no ${what} within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    s.on("data", onData);
    s.once("close", onClose);
    s.once("error", onError);
  });
}

/** Answers the store's challenge (protocol.ts) and waits for its acceptance. */
async function proveToken(s: Socket, token: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // A store with a token challenges at once; one without never will, so do not wait the whole timeout.
  const hello = await readExactly(s, AUTH_HELLO.length + CHALLENGE_BYTES, Math.min(timeoutMs, AUTH_TIMEOUT_MS), "job-token challenge");
  if (!hello.subarray(0, AUTH_HELLO.length).equals(AUTH_HELLO))
    throw new TokenRefused("it sent something other than a job-token challenge (does it run without UNICC_JOB_TOKEN?)");
  s.write(answerChallenge(token, hello.subarray(AUTH_HELLO.length, AUTH_HELLO.length + CHALLENGE_BYTES), AUTH_PURPOSE));
  const ok = await readExactly(s, AUTH_OK.length, Math.max(1, deadline - Date.now()), "acceptance of the job token");
  if (!ok.equals(AUTH_OK)) throw new TokenRefused("it answered the job token with something unexpected");
}

/**
 * A connection to the rendezvous store. Requests are pipelined on one socket; while none is
 * pending the socket is unref'd, so an idle client does not keep the process alive.
 */
export class StoreClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;
  /** The local IP this connection leaves from: an address of this host that peers can reach. */
  readonly localAddress: string;

  private constructor(
    private readonly socket: Socket,
    readonly addr: string,
  ) {
    this.localAddress = (socket.localAddress ?? "127.0.0.1").replace(/^::ffff:/, "");
    const reader = new FrameReader();
    socket.setNoDelay(true);
    socket.unref();
    socket.on("data", (chunk: Buffer) => {
      try {
        for (const body of reader.push(chunk)) {
          const res = parseResponse(body);
          const p = this.pending.get(res.id);
          if (!p) continue;
          this.pending.delete(res.id);
          if (!this.pending.size) socket.unref();
          if (res.ok) p.resolve(res.payload);
          else p.reject(new Error(`unicc store at ${addr}: ${res.payload.toString("utf8")}`));
        }
      } catch (e) {
        // The one reply that is no frame: a challenge, to a client without the token.
        const challenged = chunk.subarray(0, AUTH_HELLO.length).equals(AUTH_HELLO);
        this.fail(
          new Error(
            challenged
              ? `unicc: the store at ${addr} asks for the job token and this process has none; set UNICC_JOB_TOKEN to the job's token`
              : `unicc: the store at ${addr} sent a malformed reply (${(e as Error).message})`,
          ),
        );
      }
    });
    socket.on("error", (e) => this.fail(new Error(`unicc: lost the connection to the store at ${addr} (${e.message})`)));
    socket.on("close", () => this.fail(new Error(`unicc: the store at ${addr} closed the connection`)));
  }

  /**
   * Connects to "host:port" (IPv6 as "[addr]:port"), retrying while the store is not up yet:
   * the launcher or rank 0 may still be starting. Gives up after timeoutMs (default 30 s). With
   * `token`, proves the job token to the store before anything else is sent.
   */
  static async connect(addr: string, opts: { timeoutMs?: number; token?: string } = {}): Promise<StoreClient> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const { host, port } = splitHostPort(addr);
    const deadline = Date.now() + timeoutMs;
    let last = "no attempt";
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const socket = await tryConnect(host, port, left);
        if (opts.token) await proveToken(socket, opts.token, Math.max(1, deadline - Date.now()));
        return new StoreClient(socket, addr);
      } catch (e) {
        if (e instanceof TokenRefused)
          throw new Error(
            `unicc: the store at ${addr} did not accept this process's job token: ${e.message}. ` +
              `Every process of a job needs the same UNICC_JOB_TOKEN (\`unicc run\` sets it; with torchrun set it on every rank or on none).`,
          );
        last = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, Math.min(RETRY_MS, Math.max(0, deadline - Date.now()))));
    }
    throw new Error(
      `unicc: the rendezvous store at ${addr} did not come up within ${timeoutMs / 1000} s (${last}); ` +
        `is the launcher (or rank 0) running, and is the address reachable from here?`,
    );
  }

  set(key: string, value: Buffer): Promise<void> {
    return this.call(Op.Set, key, value).then(() => undefined);
  }

  /** Waits until the key exists, up to timeoutMs, then fails naming the key. */
  get(key: string, timeoutMs: number): Promise<Buffer> {
    const t = Number.isFinite(timeoutMs) ? Math.min(Math.max(0, Math.ceil(timeoutMs)), MAX_TIMEOUT_MS) : MAX_TIMEOUT_MS;
    return this.call(Op.Get, key, u32(t));
  }

  /** Adds delta (an integer) to the 64-bit counter at key, atomically; returns the new value. */
  add(key: string, delta: number): Promise<number> {
    if (!Number.isSafeInteger(delta)) return Promise.reject(new TypeError(`unicc store: add needs an integer delta, got ${delta}`));
    return this.call(Op.Add, key, i64(BigInt(delta))).then((b) => Number(b.readBigInt64BE(0)));
  }

  delete(key: string): Promise<void> {
    return this.call(Op.Del, key).then(() => undefined);
  }

  /** Closes the connection; requests still pending fail. */
  close(): void {
    this.fail(new Error(`unicc: the connection to the store at ${this.addr} was closed by this process`));
  }

  private call(op: Op, key: string, rest?: Buffer): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    let frame: Buffer;
    try {
      frame = encodeRequest(op, this.nextId, key, rest);
    } catch (e) {
      return Promise.reject(e);
    }
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.ref();
      this.socket.write(frame);
    });
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.socket.destroy();
    for (const p of pending) p.reject(this.closedError);
  }
}
