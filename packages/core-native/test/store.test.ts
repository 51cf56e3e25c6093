import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { StoreClient, StoreServer } from "../src/ts/store/index.js";

let server: StoreServer;
const clients: StoreClient[] = [];
const client = async () => {
  const c = await StoreClient.connect(`127.0.0.1:${server.port}`, { timeoutMs: 5000 });
  clients.push(c);
  return c;
};

beforeEach(async () => {
  server = await StoreServer.listen("127.0.0.1", 0);
});
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await server.close();
});

describe("rendezvous store", () => {
  it("returns what was set, byte for byte", async () => {
    const a = await client(), b = await client();
    const value = randomBytes(100_000);
    await a.set("k", value);
    expect(Buffer.compare(await b.get("k", 1000), value)).toBe(0);
  });

  it("get waits for a later set", async () => {
    const a = await client(), b = await client();
    const pending = b.get("later", 5000);
    await new Promise((r) => setTimeout(r, 50));
    await a.set("later", Buffer.from("v"));
    expect((await pending).toString()).toBe("v");
  });

  it("get fails after its timeout with the key named", async () => {
    const a = await client();
    await expect(a.get("never", 100)).rejects.toThrow(/key 'never' did not appear within 100 ms/);
  });

  it("concurrent adds from several clients sum exactly", async () => {
    const cs = await Promise.all([1, 2, 3, 4].map(() => client()));
    const deltas = cs.map(() => Array.from({ length: 50 }, () => Math.floor(Math.random() * 1000) - 500));
    const results = await Promise.all(cs.flatMap((c, i) => deltas[i].map((d) => c.add("n", d))));
    const total = deltas.flat().reduce((s, d) => s + d, 0);
    expect(Math.max(...results.map((r) => Math.abs(r))) <= deltas.flat().reduce((s, d) => s + Math.abs(d), 0)).toBe(true);
    expect(await cs[0].add("n", 0)).toBe(total);
  });

  it("drops a connection that sends garbage or an oversized frame, and keeps serving others", async () => {
    const good = await client();
    for (const bytes of [
      Buffer.from([0, 0, 0, 3, 9, 9, 9]), // unknown op, truncated
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // 4 GiB frame announced
      Buffer.from([0, 0, 0, 9, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0]), // key length beyond the frame
    ]) {
      const closed = await new Promise<boolean>((resolve) => {
        const s = connect(server.port, "127.0.0.1", () => s.write(bytes));
        s.on("close", () => resolve(true));
        s.on("error", () => {});
        setTimeout(() => resolve(false), 3000);
      });
      expect(closed).toBe(true);
    }
    await good.set("still", Buffer.from("here"));
    expect((await good.get("still", 1000)).toString()).toBe("here");
  });

  it("a client fails pending gets when the store goes away", async () => {
    const a = await client();
    const pending = a.get("x", 10_000);
    await server.close();
    await expect(pending).rejects.toThrow(/lost the connection to the store at 127\.0\.0\.1:\d+/);
    server = await StoreServer.listen("127.0.0.1", 0);
  });

  it("connecting to nothing fails within the timeout, naming the address", async () => {
    await expect(StoreClient.connect("127.0.0.1:1", { timeoutMs: 300 })).rejects.toThrow(/127\.0\.0\.1:1 within 0.3 s/);
  });
});
