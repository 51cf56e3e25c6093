// The rendezvous store's wire format, one parser for both sides.
//
// Every frame: u32 body length (big endian), then the body:
//   request:  u8 op | u32 id | u16 key length | key (utf8) | op-specific rest
//     SET rest = value bytes; GET rest = u32 timeout ms; ADD rest = i64 delta; DEL rest = empty
//   response: u8 status (0 ok, 1 error) | u32 id | payload (GET: value, ADD: i64, error: utf8 text)
// Requests on one connection are answered in any order (a GET may wait); the id pairs them up.
//
// A store started with the job token first proves the client: it sends AUTH_HELLO and a 32-byte
// challenge, reads nothing but the 32-byte answer (auth.ts, purpose "store"), and replies
// AUTH_OK before any frame; a wrong or late answer closes the connection.

export enum Op {
  Set = 1,
  Get = 2,
  Add = 3,
  Del = 4,
}

/** Largest frame body either side accepts; a peer announcing more is dropped before any allocation. */
export const MAX_FRAME = 64 << 20;
export const MAX_KEY = 1024;
/** setTimeout's limit; longer GET timeouts are clamped to it (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const AUTH_HELLO = Buffer.from("UCCSAUTH");
export const AUTH_OK = Buffer.from([1]);
export const AUTH_PURPOSE = "store";
/** How long the store waits for a client's answer to its challenge. */
export const AUTH_TIMEOUT_MS = 10_000;

const REQUEST_HEAD = 1 + 4 + 2;
const RESPONSE_HEAD = 1 + 4;

export interface Request {
  op: Op;
  id: number;
  key: string;
  value: Buffer; // SET
  timeoutMs: number; // GET
  delta: bigint; // ADD
}

export interface Response {
  ok: boolean;
  id: number;
  payload: Buffer;
}

export class ProtocolError extends Error {}

export function encodeRequest(op: Op, id: number, key: string, rest: Buffer = Buffer.alloc(0)): Buffer {
  const k = Buffer.from(key, "utf8");
  if (k.length > MAX_KEY) throw new ProtocolError(`store key longer than ${MAX_KEY} bytes: '${key.slice(0, 40)}...'`);
  const body = REQUEST_HEAD + k.length + rest.length;
  if (body > MAX_FRAME) throw new ProtocolError(`store value of ${rest.length} bytes is too large (the limit is about ${MAX_FRAME} bytes)`);
  const b = Buffer.allocUnsafe(4 + body);
  b.writeUInt32BE(body, 0);
  b.writeUInt8(op, 4);
  b.writeUInt32BE(id, 5);
  b.writeUInt16BE(k.length, 9);
  k.copy(b, 11);
  rest.copy(b, 11 + k.length);
  return b;
}

export function encodeResponse(ok: boolean, id: number, payload: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + RESPONSE_HEAD + payload.length);
  b.writeUInt32BE(RESPONSE_HEAD + payload.length, 0);
  b.writeUInt8(ok ? 0 : 1, 4);
  b.writeUInt32BE(id, 5);
  payload.copy(b, 9);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v, 0);
  return b;
}

export function i64(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(v, 0);
  return b;
}

/**
 * Splits a byte stream into frame bodies. Chunks are kept as they come and joined once per frame,
 * so a large value arriving in many small reads costs one copy, not one per read; a frame that
 * announces more than MAX_FRAME is refused as soon as its 4-byte header is in.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    while (this.buffered >= 4) {
      // A header split across reads: join what is buffered so the length reads in one piece.
      if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
      const len = this.chunks[0].readUInt32BE(0);
      if (len > MAX_FRAME) throw new ProtocolError(`frame of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
      if (this.buffered < 4 + len) break;
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
      out.push(all.subarray(4, 4 + len));
      const rest = all.subarray(4 + len);
      this.chunks = rest.length ? [rest] : [];
      this.buffered = rest.length;
    }
    return out;
  }
}

export function parseRequest(body: Buffer): Request {
  if (body.length < REQUEST_HEAD) throw new ProtocolError(`truncated request (${body.length} bytes)`);
  const op = body.readUInt8(0) as Op;
  const id = body.readUInt32BE(1);
  const klen = body.readUInt16BE(5);
  if (klen > MAX_KEY) throw new ProtocolError(`key of ${klen} bytes exceeds the ${MAX_KEY}-byte limit`);
  if (REQUEST_HEAD + klen > body.length) throw new ProtocolError(`key length ${klen} runs past the end of the frame`);
  const key = body.toString("utf8", REQUEST_HEAD, REQUEST_HEAD + klen);
  const rest = body.subarray(REQUEST_HEAD + klen);
  const req: Request = { op, id, key, value: rest, timeoutMs: 0, delta: 0n };
  switch (op) {
    case Op.Set:
      break;
    case Op.Del:
      if (rest.length !== 0) throw new ProtocolError("DEL carries nothing after the key");
      break;
    case Op.Get:
      if (rest.length !== 4) throw new ProtocolError("GET needs a 4-byte timeout");
      req.timeoutMs = Math.min(rest.readUInt32BE(0), MAX_TIMEOUT_MS);
      break;
    case Op.Add:
      if (rest.length !== 8) throw new ProtocolError("ADD needs an 8-byte delta");
      req.delta = rest.readBigInt64BE(0);
      break;
    default:
      throw new ProtocolError(`unknown op ${op}`);
  }
  return req;
}

export function parseResponse(body: Buffer): Response {
  if (body.length < RESPONSE_HEAD) throw new ProtocolError(`truncated response (${body.length} bytes)`);
  const status = body.readUInt8(0);
  if (status > 1) throw new ProtocolError(`unknown response status ${status}`);
  return { ok: status === 0, id: body.readUInt32BE(1), payload: body.subarray(RESPONSE_HEAD) };
}
