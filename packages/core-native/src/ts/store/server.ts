import { createServer, type Server, type Socket } from "node:net";

import { ANSWER_BYTES, checkAnswer, newChallenge } from "../auth.js";
import {
  AUTH_HELLO,
  AUTH_OK,
  AUTH_PURPOSE,
  AUTH_TIMEOUT_MS,
  encodeResponse,
  FrameReader,
  i64,
  Op,
  parseRequest,
  type Request,
} from "./protocol.js";

interface Waiter {
  socket: Socket;
  id: number;
  timer: NodeJS.Timeout;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const EMPTY = Buffer.alloc(0);

/** Ends a connection the store will not serve, with one warning line naming the sender. */
function drop(socket: Socket, why: string): void {
  if (socket.destroyed) return;
  process.emitWarning(`unicc store: dropped ${socket.remoteAddress}:${socket.remotePort}: ${why}`);
  socket.destroy();
}

export interface StoreServerOptions {
  /** The job token: clients must prove it before anything they send is read. */
  token?: string;
}

/** The embedded rendezvous store: a key-value map with waiting gets and atomic counters. */
export class StoreServer {
  private readonly data = new Map<string, Buffer>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<{ prefix: string; fn: (key: string, value: Buffer) => void }>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
    private readonly token: string | undefined,
  ) {
    server.on("connection", (s) => this.serve(s));
    // Past listen(), an accept failure (EMFILE...) must not take the launcher down with it.
    server.on("error", (e) => process.emitWarning(`unicc store on ${host}:${port}: ${e.message}`));
  }

  /** Listens on host:port (port 0: a free one, then read `port`). */
  static listen(host: string, port: number, opts: StoreServerOptions = {}): Promise<StoreServer> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      const onError = (e: NodeJS.ErrnoException) =>
        reject(
          new Error(
            e.code === "EADDRINUSE"
              ? `unicc: the store cannot listen on ${host}:${port}: the port is in use (choose another MASTER_PORT / UNICC_STORE_PORT)`
              : `unicc: the store cannot listen on ${host}:${port}: ${e.message}`,
          ),
        );
      server.once("error", onError);
      server.listen(port, host, () => {
        server.off("error", onError);
        const addr = server.address();
        resolve(new StoreServer(server, host, typeof addr === "object" && addr ? addr.port : port, opts.token || undefined));
      });
    });
  }

  /** Stops listening and drops every connection; clients see their pending requests fail. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      for (const set of this.waiters.values()) for (const w of set) clearTimeout(w.timer);
      this.waiters.clear();
      for (const s of this.sockets) s.destroy();
      this.server.close(() => resolve());
    });
    return this.closing;
  }

  /**
   * For the process that hosts the store (the launcher): sets a key as a client's SET would,
   * waking its waiters.
   */
  put(key: string, value: Buffer): void {
    this.data.set(key, Buffer.from(value));
    this.wake(key);
  }

  /** For the hosting process: calls fn after every client SET of a key under prefix; returns the unwatch. */
  watch(prefix: string, fn: (key: string, value: Buffer) => void): () => void {
    const w = { prefix, fn };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("error", () => socket.destroy());
    if (this.token) this.authenticate(socket, this.token);
    else this.serveRequests(socket, EMPTY);
    socket.on("close", () => {
      this.sockets.delete(socket);
      for (const [key, set] of this.waiters) {
        for (const w of set)
          if (w.socket === socket) {
            clearTimeout(w.timer);
            set.delete(w);
          }
        if (!set.size) this.waiters.delete(key);
      }
    });
  }

  /** Challenges a new connection; only a right answer in time lets its bytes reach the parser. */
  private authenticate(socket: Socket, token: string): void {
    const challenge = newChallenge();
    const got: Buffer[] = [];
    let n = 0;
    let settled = false;
    const refuse = (why: string) => {
      settled = true;
      drop(socket, why);
    };
    const timer = setTimeout(() => refuse(`no answer to the job-token challenge within ${AUTH_TIMEOUT_MS / 1000} s`), AUTH_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      got.push(chunk);
      n += chunk.length;
      if (n < ANSWER_BYTES) return;
      socket.off("data", onData);
      clearTimeout(timer);
      const all = Buffer.concat(got, n);
      if (!checkAnswer(token, challenge, AUTH_PURPOSE, all.subarray(0, ANSWER_BYTES)))
        return refuse("wrong answer to the job-token challenge (a stranger, or another job's process)");
      settled = true;
      socket.write(AUTH_OK);
      this.serveRequests(socket, all.subarray(ANSWER_BYTES));
    };
    socket.on("data", onData);
    const who = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.once("close", () => {
      clearTimeout(timer);
      if (!settled) process.emitWarning(`unicc store: dropped ${who}: it closed before answering the job-token challenge`);
    });
    socket.write(Buffer.concat([AUTH_HELLO, challenge]));
  }

  /** Parses requests from a trusted connection; `early` holds bytes that came with the token answer. */
  private serveRequests(socket: Socket, early: Buffer): void {
    const reader = new FrameReader();
    const onData = (chunk: Buffer) => {
      try {
        for (const body of reader.push(chunk)) this.handle(socket, parseRequest(body));
      } catch (e) {
        // Malformed input costs the sender its connection, nobody else anything.
        drop(socket, (e as Error).message);
      }
    };
    socket.on("data", onData);
    if (early.length) onData(early);
  }

  private reply(socket: Socket, ok: boolean, id: number, payload: Buffer): void {
    if (!socket.destroyed) socket.write(encodeResponse(ok, id, payload));
  }

  private fail(socket: Socket, id: number, message: string): void {
    this.reply(socket, false, id, Buffer.from(message, "utf8"));
  }

  private handle(socket: Socket, req: Request): void {
    switch (req.op) {
      case Op.Set:
        // Copy: the frame is a view into a read buffer that may hold other frames.
        this.data.set(req.key, Buffer.from(req.value));
        this.reply(socket, true, req.id, EMPTY);
        this.wake(req.key);
        for (const w of this.watchers) if (req.key.startsWith(w.prefix)) w.fn(req.key, req.value);
        return;
      case Op.Get: {
        const v = this.data.get(req.key);
        if (v) return this.reply(socket, true, req.id, v);
        let set = this.waiters.get(req.key);
        if (!set) this.waiters.set(req.key, (set = new Set()));
        const waiting = set;
        const w: Waiter = {
          socket,
          id: req.id,
          timer: setTimeout(() => {
            waiting.delete(w);
            if (!waiting.size && this.waiters.get(req.key) === waiting) this.waiters.delete(req.key);
            this.fail(socket, req.id, `key '${req.key}' did not appear within ${req.timeoutMs} ms`);
          }, req.timeoutMs),
        };
        waiting.add(w);
        return;
      }
      case Op.Add: {
        const prev = this.data.get(req.key);
        if (prev && prev.length !== 8)
          return this.fail(socket, req.id, `key '${req.key}' holds a ${prev.length}-byte value, not a counter`);
        const next = (prev ? prev.readBigInt64BE(0) : 0n) + req.delta;
        if (next < I64_MIN || next > I64_MAX) return this.fail(socket, req.id, `counter '${req.key}' would overflow 64 bits`);
        const v = i64(next);
        this.data.set(req.key, v);
        this.reply(socket, true, req.id, v);
        this.wake(req.key);
        return;
      }
      case Op.Del:
        this.data.delete(req.key);
        this.reply(socket, true, req.id, EMPTY);
        return;
    }
  }

  private wake(key: string): void {
    const set = this.waiters.get(key);
    const v = this.data.get(key);
    if (!set || !v) return;
    this.waiters.delete(key);
    for (const w of set) {
      clearTimeout(w.timer);
      this.reply(w.socket, true, w.id, v);
    }
  }
}
