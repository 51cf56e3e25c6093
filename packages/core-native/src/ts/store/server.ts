import { createServer, type Server, type Socket } from "node:net";

import { encodeResponse, FrameReader, i64, Op, parseRequest, ProtocolError, type Request } from "./protocol.js";

interface Waiter {
  socket: Socket;
  id: number;
  timer: NodeJS.Timeout;
}

/** The embedded rendezvous store: a key-value map with waiting gets and atomic counters. */
export class StoreServer {
  private readonly data = new Map<string, Buffer>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {
    server.on("connection", (s) => this.serve(s));
  }

  static listen(host: string, port: number): Promise<StoreServer> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new Error(
            e.code === "EADDRINUSE"
              ? `unicc: the store cannot listen on ${host}:${port}: the port is in use (choose another MASTER_PORT / UNICC_STORE_PORT)`
              : `unicc: the store cannot listen on ${host}:${port}: ${e.message}`,
          ),
        ),
      );
      server.listen(port, host, () => {
        const addr = server.address();
        resolve(new StoreServer(server, host, typeof addr === "object" && addr ? addr.port : port));
      });
    });
  }

  close(): Promise<void> {
    for (const set of this.waiters.values()) for (const w of set) clearTimeout(w.timer);
    this.waiters.clear();
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const reader = new FrameReader();
    socket.on("data", (chunk) => {
      try {
        for (const body of reader.push(chunk)) this.handle(socket, parseRequest(body));
      } catch (e) {
        // Malformed input costs the sender its connection, nobody else anything.
        if (!(e instanceof ProtocolError)) throw e;
        process.emitWarning(`unicc store: dropped ${socket.remoteAddress}:${socket.remotePort}: ${e.message}`);
        socket.destroy();
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      this.sockets.delete(socket);
      for (const set of this.waiters.values())
        for (const w of set) if (w.socket === socket) { clearTimeout(w.timer); set.delete(w); }
    });
  }

  private reply(socket: Socket, ok: boolean, id: number, payload: Buffer): void {
    if (!socket.destroyed) socket.write(encodeResponse(ok, id, payload));
  }

  private handle(socket: Socket, req: Request): void {
    switch (req.op) {
      case Op.Set:
        this.data.set(req.key, Buffer.from(req.value));
        this.reply(socket, true, req.id, Buffer.alloc(0));
        this.wake(req.key);
        return;
      case Op.Get: {
        const v = this.data.get(req.key);
        if (v) return this.reply(socket, true, req.id, v);
        const set = this.waiters.get(req.key) ?? new Set<Waiter>();
        this.waiters.set(req.key, set);
        const w: Waiter = {
          socket,
          id: req.id,
          timer: setTimeout(() => {
            set.delete(w);
            this.reply(socket, false, req.id, Buffer.from(`key '${req.key}' did not appear within ${req.timeoutMs} ms`));
          }, req.timeoutMs),
        };
        set.add(w);
        return;
      }
      case Op.Add: {
        const prev = this.data.get(req.key);
        const next = (prev && prev.length === 8 ? prev.readBigInt64BE(0) : 0n) + req.delta;
        this.data.set(req.key, i64(next));
        this.reply(socket, true, req.id, i64(next));
        this.wake(req.key);
        return;
      }
      case Op.Del:
        this.data.delete(req.key);
        this.reply(socket, true, req.id, Buffer.alloc(0));
        return;
    }
  }

  private wake(key: string): void {
    const set = this.waiters.get(key);
    const v = this.data.get(key);
    if (!set || !v) return;
    for (const w of set) {
      clearTimeout(w.timer);
      this.reply(w.socket, true, w.id, v);
    }
    this.waiters.delete(key);
  }
}
