import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

import { StoreClient, StoreServer } from "../src/ts/store/index.js";
import { runJob, WORKERS } from "./run-job.js";

const KAT = fileURLToPath(new URL("../build/Release/unicc_mac_kat", import.meta.url));

interface Probe {
  what: string;
  port: number;
  /** The local port this connection came from: the address its drop must be logged under. */
  localPort: number;
  /** What the listener sent back before it closed. */
  received: Buffer;
  closed: Promise<void>;
  socket: Socket;
}

/** Connects to a port as a stranger and writes `bytes` (leaves it open unless `end`). */
function probe(what: string, port: number, bytes: Buffer, opts: { end?: boolean; onData?: (p: Probe) => void } = {}): Promise<Probe> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const p: Probe = { what, port, localPort: 0, received: Buffer.alloc(0), socket, closed: Promise.resolve() };
    p.closed = new Promise((done) => socket.once("close", () => done()));
    socket.on("error", () => {}); // a reset is one way of being dropped
    socket.on("data", (d: Buffer) => {
      p.received = Buffer.concat([p.received, d]);
      opts.onData?.(p);
    });
    socket.once("connect", () => {
      p.localPort = socket.localPort ?? 0;
      if (bytes.length) socket.write(bytes);
      if (opts.end) socket.end();
      resolve(p);
    });
    // Refused outright (the listener is already gone): dropped before a byte was read.
    socket.once("close", () => resolve(p));
  });
}

/** The job key a rank's hello carries: FNV-1a 64 of "<job id>-<init generation><lane>", as communicator.cc computes it. */
function jobKey(s: string): bigint {
  let h = 1469598103934665603n;
  for (const c of Buffer.from(s)) h = BigInt.asUintN(64, (h ^ BigInt(c)) * 1099511628211n);
  return h;
}

/** A well-formed rank hello (tcp.h) from `from` to `to` of the job, stream 0, with a fresh nonce. */
function hello(key: bigint, from: number, to: number): Buffer {
  const b = Buffer.alloc(48);
  b.write("ucchell3", 0, "latin1");
  b.writeBigUInt64LE(key, 8);
  b.writeUInt32LE(from, 16);
  b.writeUInt32LE(to, 20);
  randomBytes(16).copy(b, 32);
  return b;
}

/** Garbage of three kinds for one port: random bytes, a frame header announcing 4 GiB, a truncated hello. */
function garbage(port: number, key: bigint, to: number): Promise<Probe>[] {
  const huge = Buffer.alloc(20);
  huge.writeUInt32LE(0x44434355, 0); // "UCCD", a data frame
  huge.writeUInt32LE(0xffffffff, 12); // of 4 GiB
  huge.writeUInt32LE(0, 16); // chunk 0
  const storeHuge = Buffer.from([0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1]);
  return [
    probe("random bytes", port, randomBytes(4096), { end: true }),
    probe("huge frame header", port, Buffer.concat([huge, storeHuge]), { end: true }),
    // Kept open: the listener must give up on it by itself, within its bound.
    probe("truncated hello", port, hello(key, 0, to).subarray(0, 21)),
  ];
}

interface RankRun {
  out: string;
  err: string;
  code: Promise<number | null>;
}

const children: ChildProcess[] = [];

/** Starts one rank of the security worker's allreduce scenario outside the launcher, 2 ranks per host identity. */
function startRank(rank: number, env: Record<string, string>): RankRun {
  const c = spawn(process.execPath, [`${WORKERS}security.mjs`, "allreduce"], {
    env: { ...process.env, UNICC_RANK: String(rank), UNICC_HOST_ID: rank < 2 ? "host-a" : "host-b", UNICC_HOST_ADDR: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(c);
  const o: RankRun = { out: "", err: "", code: new Promise((r) => c.once("close", (code) => r(code))) };
  c.stdout!.on("data", (d) => (o.out += d));
  c.stderr!.on("data", (d) => (o.err += d));
  return o;
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

describe("job token", () => {
  it("the handshake MAC matches the published SipHash-2-4 vectors", () => {
    expect(execFileSync(KAT, { encoding: "utf8" })).toMatch(/^ok 28$/m);
  });

  it("unicc run gives every rank the same fresh token, never on a command line", async () => {
    const run = () =>
      runJob(["-H", "localhost:1,b:1", "--launch-agent", "env", "node", `${WORKERS}security.mjs`, "token"], { timeoutMs: 60_000 });
    const [first, second] = [await run(), await run()];
    const tokens = [first, second].map((r) => {
      expect(r.code, r.stderr).toBe(0);
      const lines = [0, 1].map((rank) => r.byRank.get(rank)!.find((l) => l.startsWith("TOKEN "))!);
      // Rank 0 starts directly (token in its environment), rank 1 through the launch agent (stdin).
      for (const l of lines) expect(l).toMatch(/^TOKEN true [0-9a-f]{16} cmdline=false$/);
      expect(lines[0]).toBe(lines[1]);
      return lines[0];
    });
    expect(tokens[0]).not.toBe(tokens[1]);
  }, 120_000);
});

describe("hostile bytes on every port of a running 2x2-rank job", () => {
  it("strangers are dropped and logged once each; the job's allreduce results stay right", async () => {
    const token = randomBytes(32).toString("hex");
    const jobId = `sec${randomBytes(4).toString("hex")}`;
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on("warning", onWarning);
    const server = await StoreServer.listen("127.0.0.1", 0, { token });
    const store = await StoreClient.connect(`127.0.0.1:${server.port}`, { timeoutMs: 10_000, token });
    const outputs = new Map<number, RankRun>();
    const env = { UNICC_SIZE: "4", UNICC_STORE_ADDR: `127.0.0.1:${server.port}`, UNICC_JOB_ID: jobId, UNICC_JOB_TOKEN: token, UNICC_TIMEOUT_S: "30" };
    const start = (rank: number) => outputs.set(rank, startRank(rank, env));
    try {
      // Every rank listens once per lane (world.ts: "" for program-order calls, "e" for the engine).
      const keys = [jobKey(`${jobId}-1`), jobKey(`${jobId}-1e`)];
      // A rank's record (src/native/world/formation.cc): host, address and pid, then a port per lane.
      const portsOf = async (rank: number) =>
        (await store.get(`unicc/1/peer/${rank}`, 30_000)).toString().split("\n").slice(3).map(Number);
      const attack = (ports: number[], rank: number) => ports.flatMap((port, lane) => garbage(port, keys[lane], rank));
      // Ranks 0-2 publish their listeners, then wait in the store for rank 3: their ports are open and
      // nobody has connected yet, so every stranger below is in line before the real peers.
      for (const r of [0, 1, 2]) start(r);
      const ports = await Promise.all([0, 1, 2].map(portsOf));
      expect(ports.flat()).toHaveLength(6);
      const probes: Promise<Probe>[] = [...garbage(server.port, keys[0], 0)];
      ports.forEach((p, rank) => probes.push(...attack(p, rank)));
      // Right job, right rank, wrong token: it gets the acceptor's nonce, and no further.
      let proofSent = false;
      probes.push(
        probe("hello with a wrong token", ports[0][0], hello(keys[0], 2, 0), {
          onData: (p) => {
            if (proofSent || p.received.length < 16) return;
            proofSent = true;
            p.socket.write(randomBytes(8));
          },
        }),
      );
      const early = await Promise.all(probes);
      start(3);
      const late = await Promise.all(attack(await portsOf(3), 3));
      const all = [...early, ...late];

      const codes = await Promise.all([0, 1, 2, 3].map((r) => outputs.get(r)!.code));
      const report = [0, 1, 2, 3].map((r) => `rank ${r}:\n${outputs.get(r)!.out}\n${outputs.get(r)!.err}`).join("\n");
      expect(codes, report).toEqual([0, 0, 0, 0]);
      for (let r = 0; r < 4; r++) expect(outputs.get(r)!.out, report).toContain("RESULT ok");

      // Every stranger was dropped by the other side, within the bounds (5 s per rank hello, 10 s store).
      const dropped = await Promise.race([
        Promise.all(all.map((p) => p.closed)).then(() => true),
        new Promise((r) => setTimeout(() => r(false), 20_000)),
      ]);
      expect(dropped, "a stranger's connection is still open").toBe(true);
      const rankErr = [0, 1, 2, 3].map((r) => outputs.get(r)!.err).join("");
      for (const p of all) {
        const isStore = p.port === server.port;
        if (isStore) {
          // The store sent its challenge and nothing else.
          expect(p.received.length, p.what).toBe(8 + 32);
          expect(warnings.filter((w) => w.includes(`:${p.localPort}:`)), p.what).toHaveLength(1);
        } else if (p.what === "hello with a wrong token") {
          expect(p.received.length, "only the acceptor's nonce").toBe(16);
          expect(rankErr).toMatch(new RegExp(`rank 0 dropped a connection from 127\\.0\\.0\\.1:${p.localPort}: wrong proof of the job token`));
        } else {
          expect(p.received.length, `${p.what} to port ${p.port}`).toBe(0);
          // Ranks 0 and 1 accept (from 2 and 3) and log each stranger once; 2 and 3 never accept,
          // so their listeners close with the strangers unread. A closed stranger's local port may be
          // handed to a later one, so count every logged stranger that had this port.
          const acceptors = new Set([...ports[0], ...ports[1]]);
          const logged = rankErr.split("\n").filter((l) => l.includes(`from 127.0.0.1:${p.localPort}:`));
          const sharers = all.filter((q) => q.port !== server.port && q.localPort === p.localPort && acceptors.has(q.port));
          expect(logged, `${p.what} to port ${p.port}`).toHaveLength(sharers.length);
        }
      }
    } finally {
      process.off("warning", onWarning);
      store.close();
      await server.close();
    }
  }, 120_000);
});

describe("ranks with different tokens", () => {
  it("the dialling rank fails at once naming the token; the listening one drops it and fails within the bound", async () => {
    // Every rank passes the store with its token (TEST_STORE_TOKEN), so that the ranks meet and
    // only their own handshake can tell them apart.
    const storeToken = randomBytes(32).toString("hex");
    const server = await StoreServer.listen("127.0.0.1", 0, { token: storeToken });
    try {
      const right = {
        UNICC_SIZE: "4",
        UNICC_STORE_ADDR: `127.0.0.1:${server.port}`,
        UNICC_JOB_ID: `tok${randomBytes(4).toString("hex")}`,
        UNICC_JOB_TOKEN: randomBytes(32).toString("hex"),
        UNICC_TIMEOUT_S: "5",
        TEST_STORE_TOKEN: storeToken,
      };
      const wrong = { ...right, UNICC_JOB_TOKEN: randomBytes(32).toString("hex") };
      const t0 = Date.now();
      // Rank 2 dials rank 0 (host-b to host-a, local rank 0) and has the wrong token.
      const runs = [0, 1, 2, 3].map((r) => startRank(r, r === 2 ? wrong : right));
      const codes = await Promise.all(runs.map((r) => r.code));
      const report = runs.map((r, i) => `rank ${i}:\n${r.out}\n${r.err}`).join("\n");
      expect(Date.now() - t0, report).toBeLessThan(20_000);
      expect(codes.every((c) => c !== 0), report).toBe(true);
      expect(runs[2].err, report).toMatch(
        /rank 2 cannot join rank 0 \(host host-a, pid \d+\) at 127\.0\.0\.1:\d+: it ended the connection during the job-token check.*same UNICC_JOB_TOKEN/,
      );
      expect(runs[0].err, report).toMatch(/unicc: rank 0 dropped a connection from 127\.0\.0\.1:\d+: wrong proof of the job token/);
      expect(runs[0].err, report).toMatch(/waited 5 s for its neighbours to connect/);
    } finally {
      await server.close();
    }
  }, 60_000);
});
