export { StoreServer } from "./server.js";
export { StoreClient, splitHostPort } from "./client.js";
export * from "./protocol.js";

/** What init() needs from a rendezvous backend; the embedded store implements it, another may. */
export interface RendezvousStore {
  /** An address of this host that its peers can reach (the one it reaches the store from). */
  readonly localAddress: string;
  set(key: string, value: Buffer): Promise<void>;
  /** Waits until the key exists, up to timeoutMs, then fails naming it. */
  get(key: string, timeoutMs: number): Promise<Buffer>;
  add(key: string, delta: number): Promise<number>;
  close(): void;
}
