// The bridge protocol: how an out-of-process framework (Python: torch, mxnet, caffe) drives this
// process's World. One protocol for every Python framework; the Python side is
// packages/core-native/python/unicc/_bridge.py.
//
// Transport: one Unix-domain stream socket, at a path inside a private (0700) directory that the
// client made. The bridge serves exactly one authenticated client; once it is in, the bridge
// removes the socket file and its directory, so nothing is left behind however either side ends.
//
// Framing: u32 body length (big endian), then the body, a UTF-8 JSON object with a string field
// "t" (its type); the store's FrameReader splits the stream. A message over MAX_MESSAGE bytes
// (refused once that many bytes of it are in), a body that is not such JSON, and an unknown type
// are refused: the bridge answers {t:"error", message} and drops the connection.
//
// Handshake (bridge speaks first):
//   bridge -> {t:"hello", version:1, challenge:<hex of 32 random bytes>, auth:<bool>}
//   client -> {t:"auth", answer:<hex>}  answer = HMAC-SHA256(key=UNICC_JOB_TOKEN,
//             msg="unicc-auth-v1/bridge/" + challenge bytes) (auth.ts); any answer when auth is false
//   bridge -> {t:"welcome", rank, size, localRank, localSize, algorithm, pid}  or {t:"error", message}
//
// Tensor bytes never cross the socket. The client makes files under /dev/shm and registers them:
//   client -> {t:"map", id, path, bytes}      bridge maps the file (mapShared) and keeps it as buffer `id` (from 1)
//   bridge -> {t:"mapped", id}                the client may now unlink the file's name
// (mappings last as long as the bridge: clients pool their slabs)
// Memory the client already shares (torch's share_memory_() storages: an unlinked shm file or a
// memfd it holds open) is mapped by descriptor, so the core reduces the tensor in place:
//   client -> {t:"mapfd", id, pid, fd, bytes}  bridge maps /proc/<pid>/fd/<fd> (tmpfs only)
//   bridge -> {t:"mapped", id} or {t:"mapped", id, error}  (refused: the client copies instead)
//   client -> {t:"unmap", id}                 the bridge forgets buffer `id` (its cache is bounded)
// Requests, any number in flight, answered in completion order and paired by `req`:
//   client -> {t:"op", req, coll:"allreduce"|"broadcast"|"allgather"|"barrier", dtype:"f32"|"f64"|"i32"|"i64",
//              buf, offset, count, op?, root?, name?, compression?, out?, outOffset?}
//              (offsets in bytes; allgather writes size*count elements to buffer `out` at outOffset)
//   bridge -> {t:"done", req} or {t:"done", req, error:<the core's message, which names the rank>}
// The command ring, the second transport of op and done (see the README, "Bridge"): a shared-memory
// file with a submission and a completion queue, futex doorbells, read and written by a native
// thread of the bridge (src/native/binding/ring_format.h has its bytes). Once, before any map:
//   client -> {t:"ring", path, bytes, pid?, probe?}  bridge maps the file (a slab-folder unicc-* file);
//             pid and probe (the address of the client's own mapping of it) offer cross-memory attach
//   bridge -> {t:"ring", attach: true | <why not>} or {t:"ring", error}  (refused: the client keeps
//             sending op messages). With attach true, a ring request on buffer 0 is an unnamed
//             allreduce or broadcast whose offset is an address in the client's own memory: the core
//             reads and writes that tensor there (process_vm_readv/writev), with no slab and no copy.
//             On one host the answer may add lane: {path, lib, pieceBytes, labels}: a shared-memory
//             group (path: the bridge's descriptor of it) on which the clients of the host run small
//             unnamed requests themselves, through the C library `lib` (binding/client_lane.cc).
// Requests may then go either way; a client sends all of them one way, so that they keep its order.
// Elastic jobs (unicc run --min-np/--max-np; python/unicc/elastic.py):
//   client -> {t:"changed", req}   collective: whether any rank saw the launcher replace this generation
//   bridge -> {t:"done", req, changed:<bool>} (or an error)
//   client -> {t:"reform", req}    leave this world (requests in flight on it fail) and join the next
//   bridge -> {t:"welcome", req, rank, size, localRank, localSize, algorithm, generation, pid}
//             (a bridge that cannot re-form reports why and exits 1)
// Shutdown: client -> {t:"close"}; the bridge waits for requests in flight, closes the world (with
// the other ranks) and exits. A socket closed without it, or a parent that went away, ends the
// bridge at once: its rank leaves, and the other ranks' collectives fail naming it.
// A client ending on an uncaught exception sends {t:"leaving"} and closes the connection without
// waiting: the bridge then ends at once too, without a message of its own (the traceback says why).

export const PROTOCOL_VERSION = 1;
/** Largest control message either side sends; anything bigger is garbage or an attack. */
export const MAX_MESSAGE = 64 * 1024;
export const AUTH_PURPOSE = "bridge";

export type Coll = "allreduce" | "broadcast" | "allgather" | "barrier";
export type DType = "f32" | "f64" | "i32" | "i64";

export interface OpMessage {
  t: "op";
  req: number;
  coll: Coll;
  dtype?: DType;
  buf?: number;
  offset?: number;
  count?: number;
  op?: string;
  root?: number;
  name?: string;
  compression?: string;
  out?: number;
  outOffset?: number;
}

export type ClientMessage =
  | { t: "auth"; answer?: string }
  | { t: "map"; id: number; path: string; bytes: number }
  | { t: "mapfd"; id: number; pid: number; fd: number; bytes: number }
  | { t: "unmap"; id: number }
  | { t: "ring"; path: string; bytes: number; pid?: number; probe?: number }
  | OpMessage
  | { t: "changed"; req: number }
  | { t: "reform"; req: number }
  | { t: "close" }
  | { t: "leaving" };

export class BridgeProtocolError extends Error {}

const ARRAYS = { f32: Float32Array, f64: Float64Array, i32: Int32Array, i64: BigInt64Array } as const;

/**
 * The array an op message names (count elements of dtype at byte offset of mapped buffer id), or
 * a BridgeProtocolError: whatever a client sends, the view stays inside one mapped buffer.
 */
export function viewOf(
  buffers: ReadonlyMap<number, ArrayBuffer>,
  id: unknown,
  offset: unknown,
  count: unknown,
  dtype: unknown,
): Float32Array | Float64Array | Int32Array | BigInt64Array {
  const buf = typeof id === "number" ? buffers.get(id) : undefined;
  if (!buf) throw new BridgeProtocolError(`buffer ${String(id)} is not mapped`);
  const A = typeof dtype === "string" && Object.hasOwn(ARRAYS, dtype) ? ARRAYS[dtype as DType] : undefined;
  if (!A) throw new BridgeProtocolError(`unknown dtype '${String(dtype)}' (f32, f64, i32, i64)`);
  const off = offset ?? 0;
  const size = A.BYTES_PER_ELEMENT;
  if (!Number.isSafeInteger(off) || (off as number) < 0 || (off as number) % size || !Number.isSafeInteger(count) ||
      (count as number) < 0 || (off as number) + (count as number) * size > buf.byteLength)
    throw new BridgeProtocolError(`${String(count)} ${String(dtype)} at byte ${String(off)} do not fit buffer ${id} of ${buf.byteLength} bytes`);
  return new A(buf, off as number, count as number);
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
/** Client buffers are numbered from 1: on the command ring, buffer 0 is the client's own memory. */
export const isBufferId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;

/** The path a mapfd message names (/proc/<pid>/fd/<fd>), or a BridgeProtocolError. */
export function fdPath(m: { id?: unknown; pid?: unknown; fd?: unknown; bytes?: unknown }): string {
  if (!isBufferId(m.id) || !isCount(m.pid) || !isCount(m.fd) || !isCount(m.bytes) || m.bytes === 0)
    throw new BridgeProtocolError("mapfd needs an integer id from 1 (0 is the ring's client memory), the client's pid, a descriptor number and a positive byte count");
  return `/proc/${m.pid}/fd/${m.fd}`;
}

export function encodeMessage(msg: object): Buffer {
  const body = Buffer.from(JSON.stringify(msg), "utf8");
  const b = Buffer.allocUnsafe(4 + body.length);
  b.writeUInt32BE(body.length, 0);
  body.copy(b, 4);
  return b;
}

/** Parses one frame body into a message, or throws saying what is wrong with it. */
export function parseMessage(body: Buffer): ClientMessage {
  if (body.length > MAX_MESSAGE)
    throw new BridgeProtocolError(`message of ${body.length} bytes exceeds the bridge's ${MAX_MESSAGE}-byte limit`);
  let msg: unknown;
  try {
    msg = JSON.parse(body.toString("utf8"));
  } catch {
    throw new BridgeProtocolError("message is not JSON");
  }
  if (typeof msg !== "object" || msg === null || typeof (msg as { t?: unknown }).t !== "string")
    throw new BridgeProtocolError('message is not an object with a string field "t"');
  return msg as ClientMessage;
}
