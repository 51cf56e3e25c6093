// The bridge process: hosts one rank's World for a framework that runs in another process (see
// protocol.ts). It is started by the Python client on unicc.init() and ends with it.
import { existsSync, lstatSync, rmdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";

import { checkAnswer, newChallenge } from "../auth.js";
import { loadAddon, loadedAddon, type NativeRing } from "../native.js";
import { FrameReader, ProtocolError } from "../store/index.js";
import { init, type CommArray, type ReduceOp, type World } from "../world.js";
import {
  AUTH_PURPOSE,
  BridgeProtocolError,
  encodeMessage,
  fdPath,
  isBufferId,
  MAX_MESSAGE,
  parseMessage,
  PROTOCOL_VERSION,
  type ClientMessage,
  type DType,
  type OpMessage,
  viewOf,
} from "./protocol.js";

/** The only files a client may have mapped: its own slabs, directly in the slab folder (/dev/shm by default). */
export function slabPathPattern(dir = "/dev/shm"): RegExp {
  const d = dir.replace(/\/+$/, "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${d}/unicc-[A-Za-z0-9_-][A-Za-z0-9_.-]*$`);
}

export interface BridgeOptions {
  socketPath: string;
  /** Where the client's slabs must be (unicc run --bridge-dir); /dev/shm by default. */
  slabDir?: string;
  env?: NodeJS.ProcessEnv;
  /** How long the client may take to connect and authenticate after the world is up. */
  connectTimeoutMs: number;
}

type MapShared = (path: string, bytes: number) => ArrayBuffer;

/** Refuses a socket directory that others could reach: the client must have made it private. */
function checkPrivateDir(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory() || (st.mode & 0o077) !== 0 || (process.getuid && st.uid !== process.getuid()))
    throw new Error(`unicc bridge: ${dir} must be a directory of this user with mode 0700`);
}

/**
 * What the client needs to run its small requests itself (binding/client_lane.cc): the group's
 * descriptor here, the library beside the addon, the group's piece size and labels. Nothing where
 * the world has no such group (several hosts, one local rank) or the library is not installed.
 */
function clientLaneOffer(world: World): { lane?: { path: string; lib: string; pieceBytes: number; labels: string[] } } {
  const group = world.clientLane();
  const lib = join(dirname(loadedAddon().path), "libunicc_client_lane.so");
  if (!group || !existsSync(lib)) return {};
  return { lane: { path: `/proc/${process.pid}/fd/${group.fd}`, lib, pieceBytes: group.pieceBytes, labels: group.labels } };
}

export async function runBridge(opts: BridgeOptions): Promise<number> {
  const env = opts.env ?? process.env;
  const token = env.UNICC_JOB_TOKEN || undefined;
  checkPrivateDir(dirname(opts.socketPath));
  const SHM_PATH = slabPathPattern(opts.slabDir);
  const mapShared = (loadAddon() as unknown as { mapShared: MapShared }).mapShared;
  let world = await init({ env, clientLane: true });
  const who = `the bridge of rank ${world.rank}`;
  const welcome = (req?: number) => ({
    t: "welcome",
    ...(req === undefined ? {} : { req }),
    rank: world.rank,
    size: world.size,
    localRank: world.localRank,
    localSize: world.localSize,
    algorithm: world.algorithm,
    generation: world.generation,
    pid: process.pid,
  });

  const server: Server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.socketPath, resolve);
  });

  let finish!: (code: number) => void;
  const finished = new Promise<number>((r) => (finish = r));
  let ending = false;
  // A client that asked to close leaves with the others (close is collective); one that vanished
  // takes its rank with it at once, so that the peers see the rank gone instead of waiting on it.
  const end = async (code: number, why?: string, together = false) => {
    if (ending) return;
    ending = true;
    if (why) process.stderr.write(`unicc: ${who}: ${why}\n`);
    server.close();
    removeSocket(opts.socketPath);
    if (together) await world.close().catch(() => undefined);
    finish(code);
  };

  const connectTimer = setTimeout(
    () => void end(1, `no client connected within ${opts.connectTimeoutMs} ms`),
    opts.connectTimeoutMs,
  );
  // The client is our parent; if it is gone (re-parented), nobody will talk to us.
  const parent = process.ppid;
  const parentWatch = setInterval(() => {
    if (process.ppid !== parent) void end(1, "its parent process exited");
  }, 500);
  parentWatch.unref();

  let client: Socket | undefined;
  server.on("connection", (sock) => {
    if (client) {
      sock.end(encodeMessage({ t: "error", message: `${who} already serves a client` }));
      return;
    }
    const challenge = newChallenge();
    let authed = false;
    const buffers = new Map<number, ArrayBuffer>();
    let ring: NativeRing | undefined; // the client's command ring, once it sent one
    let leaving = false; // the client is ending on an exception: its traceback is the message
    let dropped: string | undefined; // why this bridge closed the connection itself
    const map = (id: number, path: string, bytes: number) => (ring ? ring.map(id, path, bytes) : mapShared(path, bytes));
    const reader = new FrameReader();
    const send = (m: object) => {
      if (!sock.destroyed) sock.write(encodeMessage(m));
    };
    const refuse = (message: string) => {
      sock.end(encodeMessage({ t: "error", message: `unicc: ${who} refused the connection: ${message}` }));
      sock.destroy();
    };
    send({ t: "hello", version: PROTOCOL_VERSION, challenge: challenge.toString("hex"), auth: token !== undefined });

    const onMessage = (msg: ClientMessage) => {
      if (!authed) {
        if (msg.t !== "auth") return refuse(`expected the auth message, got '${msg.t}'`);
        if (token !== undefined) {
          const answer = typeof msg.answer === "string" && /^[0-9a-f]*$/i.test(msg.answer) ? Buffer.from(msg.answer, "hex") : Buffer.alloc(0);
          if (!checkAnswer(token, challenge, AUTH_PURPOSE, answer))
            return refuse("wrong or missing proof of UNICC_JOB_TOKEN (is the client from this job?)");
        }
        authed = true;
        client = sock;
        clearTimeout(connectTimer);
        // Nobody else may connect from now on: the name can go.
        server.close();
        removeSocket(opts.socketPath);
        send(welcome());
        return;
      }
      switch (msg.t) {
        case "map": {
          if (!isBufferId(msg.id) || typeof msg.path !== "string" || !Number.isSafeInteger(msg.bytes))
            throw new BridgeProtocolError("map needs an integer id from 1 (0 is the ring's client memory), a path and an integer byte count");
          if (!SHM_PATH.test(msg.path)) throw new BridgeProtocolError(`map path ${msg.path} is not a ${opts.slabDir ?? "/dev/shm"}/unicc-* file`);
          buffers.set(msg.id, map(msg.id, msg.path, msg.bytes));
          send({ t: "mapped", id: msg.id });
          return;
        }
        case "ring": {
          if (typeof msg.path !== "string" || !SHM_PATH.test(msg.path) || !Number.isSafeInteger(msg.bytes))
            throw new BridgeProtocolError(`ring needs a ${opts.slabDir ?? "/dev/shm"}/unicc-* path and an integer byte count`);
          if (ring || buffers.size) throw new BridgeProtocolError("ring must come once, before any map");
          // Refused rings answer, not drop: the client keeps using the socket.
          try {
            // The ring's native thread is bound to one world's lanes; an elastic job replaces the world.
            if (world.generation >= 0) throw new Error("the command ring does not follow re-formed worlds yet (elastic job): requests use the socket");
            const lanes = world.nativeLanes();
            const { pid, probe } = msg;
            const client = Number.isSafeInteger(pid) && Number.isSafeInteger(probe) ? { pid: pid!, probe: probe! } : undefined;
            ring = lanes.comm.openRing(lanes.engine, msg.path, msg.bytes, lanes.wire, who, (message) => {
              dropped = `bad message from the client: ${message}`;
              send({ t: "error", message: `unicc: ${who}: ${dropped}` });
              sock.destroy();
            }, client);
            send({ t: "ring", attach: ring.attach, ...clientLaneOffer(world) });
          } catch (e) {
            send({ t: "ring", error: `unicc: ${who}: ${(e as Error).message}` });
          }
          return;
        }
        case "mapfd": {
          const path = fdPath(msg);
          // Refused mappings answer, not drop: the client falls back to copying that tensor.
          try {
            buffers.set(msg.id, map(msg.id as number, path, msg.bytes));
            send({ t: "mapped", id: msg.id });
          } catch (e) {
            send({ t: "mapped", id: msg.id, error: `unicc: ${who}: ${(e as Error).message}` });
          }
          return;
        }
        case "unmap":
          // In-flight requests keep their views; the pages go once those are collected.
          if (!buffers.delete(msg.id)) throw new BridgeProtocolError(`unmap of buffer ${String(msg.id)}, which is not mapped`);
          ring?.unmap(msg.id);
          return;
        case "op":
          return void runOp(msg).then(
            () => send({ t: "done", req: msg.req }),
            (e: Error) => send({ t: "done", req: msg.req, error: e.message }),
          );
        case "changed":
          return void world.membershipChangedAnywhere().then(
            (changed) => send({ t: "done", req: msg.req, changed }),
            (e: Error) => send({ t: "done", req: msg.req, error: e.message }),
          );
        case "reform": {
          // Elastic jobs: leave this generation's world and form the next one; mapped slabs stay.
          const after = world.generation;
          world.abandon();
          return void init({ env, after }).then(
            (w) => {
              world = w;
              send(welcome(msg.req));
            },
            (e: Error) => void end(1, `could not re-form the world: ${e.message}`),
          );
        }
        case "leaving":
          leaving = true;
          return;
        case "close":
          // What the client submitted on its ring before it asked to close is done first.
          return void (ring?.stop() ?? Promise.resolve()).then(() => end(0, undefined, true));
        default:
          throw new BridgeProtocolError(`unknown message type '${(msg as { t: string }).t}'`);
      }
    };

    const view = (id: number | undefined, offset: number | undefined, count: number, dtype: DType): CommArray =>
      viewOf(buffers, id, offset, count, dtype);

    const runOp = async (m: OpMessage): Promise<void> => {
      if (m.coll === "barrier") return world.barrier();
      const dtype = m.dtype ?? "f32";
      const a = view(m.buf, m.offset, m.count ?? 0, dtype);
      switch (m.coll) {
        case "allreduce": {
          // name and compression reach the engine; a world without it treats them as plain allreduce.
          const o: { op?: ReduceOp; name?: string; compression?: "none" | "fp16" | "bf16" } = { op: m.op as ReduceOp | undefined };
          if (m.name !== undefined) o.name = m.name;
          if (m.compression !== undefined) o.compression = m.compression as "none" | "fp16" | "bf16";
          await world.allreduce(a, o);
          return;
        }
        case "broadcast":
          await world.broadcast(a, { root: m.root });
          return;
        case "allgather":
          await world.allgather(a, view(m.out, m.outOffset, a.length * world.size, dtype));
          return;
        default:
          throw new BridgeProtocolError(`unknown collective '${m.coll}'`);
      }
    };

    let unframed = 0; // bytes of the message being received, so an oversize one is refused before it is all in
    sock.on("data", (chunk) => {
      try {
        unframed += chunk.length;
        for (const body of reader.push(chunk)) {
          unframed -= 4 + body.length;
          if (sock.destroyed) return;
          onMessage(parseMessage(body));
        }
        if (unframed > 4 + MAX_MESSAGE) throw new BridgeProtocolError(`message exceeds the bridge's ${MAX_MESSAGE}-byte limit`);
      } catch (e) {
        const bad = e instanceof BridgeProtocolError || e instanceof ProtocolError;
        dropped = bad ? `bad message from the client: ${(e as Error).message}` : (e as Error).message;
        send({ t: "error", message: bad ? `unicc: ${who}: ${dropped}` : dropped });
        sock.destroy();
      }
    });
    sock.on("error", () => undefined);
    sock.on("close", () => {
      if (sock !== client) return;
      void end(1, leaving ? undefined : dropped ? `${dropped} (the client was dropped)` : "its client closed the connection without closing the world");
    });
  });

  const code = await finished;
  clearInterval(parentWatch);
  clearTimeout(connectTimer);
  client?.destroy();
  return code;
}

function removeSocket(path: string): void {
  rmSync(path, { force: true });
  try {
    rmdirSync(dirname(path));
  } catch {
    // not empty or gone: the client removes it
  }
}
