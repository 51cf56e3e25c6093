import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Socket } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { encodeRequest, FrameReader, MAX_FRAME, MAX_KEY, Op, StoreClient, StoreServer } from "../src/ts/store/index.js";

let server: StoreServer;
const clients: StoreClient[] = [];
const client = async () => {
  const c = await StoreClient.connect(`127.0.0.1:${server.port}`, { timeoutMs: 10_000 });
  clients.push(c);
  return c;
};

/** Opens a raw connection, writes `bytes`, and resolves with whether the server closed it. */
function sendRaw(bytes: Buffer[], opts: { endAfter?: boolean } = {}): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = connect(server.port, "127.0.0.1", () => {
      for (const b of bytes) s.write(b);
      if (opts.endAfter) s.end();
    });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 10_000);
    s.on("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.on("error", () => {});
  });
}

const DIST_INDEX = pathToFileURL(fileURLToPath(new URL("../dist/index.js", import.meta.url))).href;

beforeEach(async () => {
  server = await StoreServer.listen("127.0.0.1", 0);
});
afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await server.close();
});

describe("rendezvous store", () => {
  it("returns what was set, byte for byte, to another client; delete removes it", async () => {
    const a = await client(), b = await client();
    expect(a.localAddress).toBe("127.0.0.1");
    for (const size of [0, 1, 100_000, 8 << 20]) {
      const value = randomBytes(size);
      await a.set(`k${size}`, value);
      expect(Buffer.compare(await b.get(`k${size}`, 5000), value)).toBe(0);
    }
    const replaced = randomBytes(33);
    await b.set("k1", replaced);
    expect(Buffer.compare(await a.get("k1", 5000), replaced)).toBe(0);
    await a.delete("k1");
    await expect(b.get("k1", 50)).rejects.toThrow(/key 'k1' did not appear within 50 ms/);
  });

  it("get waits for a later set, on every waiting client", async () => {
    const a = await client(), b = await client(), c = await client();
    const waits = [b.get("later", 10_000), c.get("later", 10_000), c.get("later", 10_000)];
    // Requests on one connection are handled in order: once these replies are in, the gets are waiting.
    await Promise.all([b.add("sync", 0), c.add("sync", 0)]);
    const value = randomBytes(64);
    await a.set("later", value);
    for (const v of await Promise.all(waits)) expect(Buffer.compare(v, value)).toBe(0);
  });

  it("get fails after its timeout with the key named, and the client stays usable", async () => {
    const a = await client();
    const t0 = Date.now();
    await expect(a.get("never", 200)).rejects.toThrow(/key 'never' did not appear within 200 ms/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    await a.set("now", Buffer.from("ok"));
    expect((await a.get("now", 1000)).toString()).toBe("ok");
  });

  it("concurrent adds from several clients are atomic and sum exactly", async () => {
    const cs = await Promise.all([1, 2, 3, 4, 5].map(() => client()));
    const deltas = cs.map(() => Array.from({ length: 200 }, () => 1 + Math.floor(Math.random() * 1000)));
    const results = await Promise.all(cs.flatMap((c, i) => deltas[i].map((d) => c.add("n", d))));
    const total = deltas.flat().reduce((s, d) => s + d, 0);
    // Positive deltas applied one at a time give distinct running totals, the last being the sum.
    expect(new Set(results).size).toBe(results.length);
    expect(Math.max(...results)).toBe(total);
    expect(await cs[0].add("n", -total)).toBe(0);
    expect(await cs[1].add("fresh", -5)).toBe(-5);
  });

  it("refuses adds that make no sense with an error, and keeps the connection", async () => {
    const a = await client();
    await a.set("text", Buffer.from("not a counter"));
    await expect(a.add("text", 1)).rejects.toThrow(/'text' holds a 13-byte value, not a counter/);
    await a.add("big", Number.MAX_SAFE_INTEGER);
    for (let i = 0; i < 1023; i++) await a.add("big", Number.MAX_SAFE_INTEGER);
    await expect(a.add("big", Number.MAX_SAFE_INTEGER)).rejects.toThrow(/would overflow 64 bits/);
    await expect(a.add("x", 1.5)).rejects.toThrow(/integer delta/);
    await expect(a.set("k".repeat(MAX_KEY + 1), Buffer.alloc(1))).rejects.toThrow(/key longer than/);
    expect(await a.add("x", 2)).toBe(2);
  });

  it("drops a connection that sends garbage or an oversized frame, and keeps serving others", async () => {
    const good = await client();
    const pending = good.get("after-garbage", 20_000);
    const frame = (body: number[]) => Buffer.from([0, 0, 0, body.length, ...body]);
    const bad: [string, Buffer[]][] = [
      ["unknown op", [frame([9, 0, 0, 0, 1, 0, 0])]],
      ["body shorter than a request head", [frame([1, 0, 0])]],
      ["empty body", [frame([])]],
      ["key length past the frame end", [frame([1, 0, 0, 0, 1, 0, 200, 0x61])]],
      ["key longer than the limit", [frame([1, 0, 0, 0, 1, 0xff, 0xff])]],
      ["GET without a timeout", [frame([Op.Get, 0, 0, 0, 1, 0, 1, 0x61])]],
      ["ADD with a short delta", [frame([Op.Add, 0, 0, 0, 1, 0, 1, 0x61, 1, 2])]],
      ["4 GiB frame announced", [Buffer.from([0xff, 0xff, 0xff, 0xff])]],
      ["frame one byte over the cap, header split over two writes", [Buffer.from([(MAX_FRAME + 1) >>> 24]), Buffer.from([0, 0, 1])]],
    ];
    for (const [what, bytes] of bad) expect(await sendRaw(bytes), what).toBe(true);
    // A frame cut short by the sender closing: the server just forgets it.
    const cut = encodeRequest(Op.Set, 1, "cut", randomBytes(1000)).subarray(0, 500);
    expect(await sendRaw([cut], { endAfter: true })).toBe(true);
    await expect(good.get("cut", 50)).rejects.toThrow(/did not appear/);

    await (await client()).set("after-garbage", Buffer.from("here"));
    expect((await pending).toString()).toBe("here");
  });

  it("splits a stream into frames however the bytes arrive", () => {
    const frames = [randomBytes(0), randomBytes(3), randomBytes(70_000), randomBytes(5)].map((v, i) => encodeRequest(Op.Set, i, `k${i}`, v));
    const stream = Buffer.concat(frames);
    for (const step of [1, 2, 3, 7, 1000, stream.length]) {
      const reader = new FrameReader();
      const got: Buffer[] = [];
      for (let i = 0; i < stream.length; i += step) got.push(...reader.push(stream.subarray(i, i + step)));
      expect(got.map((b) => b.length)).toEqual(frames.map((f) => f.length - 4));
      got.forEach((b, i) => expect(Buffer.compare(b, frames[i].subarray(4))).toBe(0));
    }
  });

  it("a client fails pending requests when the store closes the connection", async () => {
    const a = await client();
    const pending = [a.get("x", 60_000), a.get("y", 60_000)];
    await a.add("sync", 0);
    await server.close();
    for (const p of pending) await expect(p).rejects.toThrow(/the store at 127\.0\.0\.1:\d+ closed the connection/);
    await expect(a.set("z", Buffer.alloc(1))).rejects.toThrow(/closed the connection/);
    server = await StoreServer.listen("127.0.0.1", 0);
  });

  it("an idle client does not keep its process alive; one with a request pending does", async () => {
    // A process of its own, as only a whole process shows what keeps it alive.
    const run = (mode: string) => {
      const code = `const { StoreClient } = await import(${JSON.stringify(DIST_INDEX)});
        const c = await StoreClient.connect("127.0.0.1:${server.port}");
        await c.set("${mode}", Buffer.from("1"));
        if ("${mode}" === "pending") {
          c.get("released", 60000).then((v) => console.log("got " + v));
          await c.set("waiting", Buffer.from("1"));
        }`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      const exit = new Promise<number | null>((resolve) => child.on("close", resolve));
      return { child, exit, out: () => out };
    };
    const observer = await client();
    const idle = run("idle");
    await observer.get("idle", 20_000);
    expect(await idle.exit).toBe(0);

    const pending = run("pending");
    await observer.get("waiting", 20_000);
    await new Promise((r) => setTimeout(r, 500)); // were the get not holding it, the process would end now
    expect(pending.child.exitCode).toBe(null);
    await observer.set("released", Buffer.from("v"));
    expect(await pending.exit).toBe(0);
    expect(pending.out()).toBe("got v\n");
  });

  it("connect retries until the store comes up", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const connecting = StoreClient.connect(`127.0.0.1:${port}`, { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 300)); // the store comes up late on purpose
    const late = await StoreServer.listen("127.0.0.1", port);
    const c = await connecting;
    await c.set("k", Buffer.from("v"));
    expect((await c.get("k", 1000)).toString()).toBe("v");
    c.close();
    await late.close();
  });

  it("connecting to nothing fails within the timeout, naming the address", async () => {
    const t0 = Date.now();
    await expect(StoreClient.connect("127.0.0.1:1", { timeoutMs: 400 })).rejects.toThrow(
      /store at 127\.0\.0\.1:1 did not come up within 0\.4 s .*launcher \(or rank 0\)/,
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(StoreClient.connect("no-port-here")).rejects.toThrow(/not host:port/);
  });
});

describe("rendezvous store with a job token", () => {
  const token = randomBytes(32).toString("hex");
  let secured: StoreServer;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  beforeEach(async () => {
    secured = await StoreServer.listen("127.0.0.1", 0, { token });
    warnings.length = 0;
    process.on("warning", onWarning);
  });
  afterEach(async () => {
    process.off("warning", onWarning);
    await secured.close();
  });
  const addr = () => `127.0.0.1:${secured.port}`;

  it("serves a client with the right token", async () => {
    const c = await StoreClient.connect(addr(), { timeoutMs: 5000, token });
    const v = randomBytes(100);
    await c.set("k", v);
    expect((await c.get("k", 1000)).equals(v)).toBe(true);
    c.close();
    expect(warnings).toEqual([]);
  });

  it("drops a client with a wrong token at once, logging its address once", async () => {
    const t0 = Date.now();
    await expect(StoreClient.connect(addr(), { timeoutMs: 20_000, token: `${token.slice(1)}0` })).rejects.toThrow(
      /store at 127\.0\.0\.1:\d+ did not accept this process's job token: .*UNICC_JOB_TOKEN/,
    );
    expect(Date.now() - t0).toBeLessThan(5000); // a refusal is final: no retrying until the timeout
    await new Promise((r) => setTimeout(r, 50));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/dropped 127\.0\.0\.1:\d+: wrong answer to the job-token challenge/);
  });

  it("tells a client without a token what is missing; its request is never read", async () => {
    const c = await StoreClient.connect(addr(), { timeoutMs: 5000 });
    await expect(c.set("k", Buffer.from("v"))).rejects.toThrow(/asks for the job token and this process has none; set UNICC_JOB_TOKEN/);
    const check = await StoreClient.connect(addr(), { timeoutMs: 5000, token });
    await expect(check.get("k", 10)).rejects.toThrow(/did not appear/);
    check.close();
  });

  it("a client with a token refuses a store without one, within a bound", async () => {
    const t0 = Date.now();
    await expect(StoreClient.connect(`127.0.0.1:${server.port}`, { timeoutMs: 60_000, token })).rejects.toThrow(
      /did not accept this process's job token: no job-token challenge within 10 s/,
    );
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 20_000);

  it("drops a silent connection after its bound", async () => {
    const s = connect(secured.port, "127.0.0.1");
    s.on("error", () => {});
    const t0 = Date.now();
    let got = 0;
    s.on("data", (d: Buffer) => (got += d.length));
    await new Promise((r) => s.once("close", r));
    expect(Date.now() - t0).toBeGreaterThan(9000);
    expect(got).toBe(8 + 32); // the challenge, nothing more
    expect(warnings.filter((w) => /no answer to the job-token challenge within 10 s/.test(w))).toHaveLength(1);
  }, 20_000);
});
