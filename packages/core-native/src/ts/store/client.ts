import { connect as netConnect, type Socket } from "node:net";

import { encodeRequest, FrameReader, i64, Op, parseResponse, ProtocolError, u32 } from "./protocol.js";

interface Pending {
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

/** A connection to the rendezvous store. Idle, it does not keep the process alive. */
export class StoreClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    readonly addr: string,
  ) {
    const reader = new FrameReader();
    socket.setNoDelay(true);
    socket.unref();
    socket.on("data", (chunk) => {
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
        this.fail(e instanceof ProtocolError ? new Error(`unicc store at ${addr} sent garbage: ${e.message}`) : (e as Error));
      }
    });
    socket.on("error", (e) => this.fail(new Error(`unicc: lost the connection to the store at ${addr} (${e.message})`)));
    socket.on("close", () => this.fail(new Error(`unicc: lost the connection to the store at ${addr} (closed)`)));
  }

  /** Connects, retrying while the store is not up yet (its host may still be starting). */
  static async connect(addr: string, opts: { timeoutMs?: number } = {}): Promise<StoreClient> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const i = addr.lastIndexOf(":");
    const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(addr.slice(i + 1));
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = netConnect({ host, port, timeout: Math.max(1, deadline - Date.now()) });
          s.once("connect", () => { s.setTimeout(0); resolve(s); });
          s.once("timeout", () => { s.destroy(); reject(new Error("timed out")); });
          s.once("error", reject);
        });
        return new StoreClient(socket, addr);
      } catch (e) {
        last = (e as Error).message;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw new Error(
      `unicc: cannot reach the rendezvous store at ${addr} within ${timeoutMs / 1000} s (${last}); is the launcher (or rank 0) running and reachable?`,
    );
  }

  /** The local IP this connection leaves from: an address of this host that peers can reach. */
  get localAddress(): string {
    return this.socket.localAddress ?? "127.0.0.1";
  }

  set(key: string, value: Buffer): Promise<void> {
    return this.call(Op.Set, key, value).then(() => undefined);
  }

  /** Waits until the key exists, up to timeoutMs. */
  get(key: string, timeoutMs: number): Promise<Buffer> {
    return this.call(Op.Get, key, u32(timeoutMs));
  }

  add(key: string, delta: number): Promise<number> {
    return this.call(Op.Add, key, i64(BigInt(delta))).then((b) => Number(b.readBigInt64BE(0)));
  }

  delete(key: string): Promise<void> {
    return this.call(Op.Del, key).then(() => undefined);
  }

  close(): void {
    this.socket.destroy();
  }

  private call(op: Op, key: string, rest?: Buffer): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++ >>> 0;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.ref();
      this.socket.write(encodeRequest(op, id, key, rest));
    });
  }

  private fail(e: Error): void {
    this.closedError ??= e;
    for (const p of this.pending.values()) p.reject(this.closedError);
    this.pending.clear();
    this.socket.destroy();
  }
}
