// The rendezvous store's wire format, one parser for both sides.
//
// Every frame: u32 body length (big endian), then the body:
//   request:  u8 op | u32 id | u16 key length | key (utf8) | op-specific rest
//     SET rest = value bytes; GET rest = u32 timeout ms; ADD rest = i64 delta; DEL rest = empty
//   response: u8 status (0 ok, 1 error) | u32 id | payload (GET: value, ADD: i64, error: utf8 text)

export enum Op {
  Set = 1,
  Get = 2,
  Add = 3,
  Del = 4,
}

export const MAX_FRAME = 64 << 20;
export const MAX_KEY = 1024;

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
  if (k.length > MAX_KEY) throw new ProtocolError(`store key longer than ${MAX_KEY} bytes: ${key.slice(0, 40)}...`);
  const body = 1 + 4 + 2 + k.length + rest.length;
  if (body > MAX_FRAME) throw new ProtocolError(`store value too large (${rest.length} bytes; at most ${MAX_FRAME})`);
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
  const b = Buffer.allocUnsafe(4 + 5 + payload.length);
  b.writeUInt32BE(5 + payload.length, 0);
  b.writeUInt8(ok ? 0 : 1, 4);
  b.writeUInt32BE(id, 5);
  payload.copy(b, 9);
  return b;
}

export function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

export function i64(v: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(v, 0);
  return b;
}

/** Splits a byte stream into frame bodies; rejects a frame that announces more than MAX_FRAME. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new ProtocolError(`frame of ${len} bytes exceeds the ${MAX_FRAME}-byte limit`);
      if (this.buf.length < 4 + len) break;
      out.push(this.buf.subarray(4, 4 + len));
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }
}

export function parseRequest(body: Buffer): Request {
  if (body.length < 7) throw new ProtocolError("truncated request");
  const op = body.readUInt8(0) as Op;
  const id = body.readUInt32BE(1);
  const klen = body.readUInt16BE(5);
  if (klen > MAX_KEY || 7 + klen > body.length) throw new ProtocolError("bad key length");
  const key = body.toString("utf8", 7, 7 + klen);
  const rest = body.subarray(7 + klen);
  const req: Request = { op, id, key, value: rest, timeoutMs: 0, delta: 0n };
  switch (op) {
    case Op.Set:
    case Op.Del:
      break;
    case Op.Get:
      if (rest.length !== 4) throw new ProtocolError("GET needs a 4-byte timeout");
      req.timeoutMs = rest.readUInt32BE(0);
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
  if (body.length < 5) throw new ProtocolError("truncated response");
  return { ok: body.readUInt8(0) === 0, id: body.readUInt32BE(1), payload: body.subarray(5) };
}
