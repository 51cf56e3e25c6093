// Fuzz target (jsfuzz.mjs): bytes a client sends to its bridge. run.sh bundles
// src/ts/bridge/protocol.ts (and the store's FrameReader it is framed with) into .build/bridge.mjs
// next to it, so that their coverage counts. The first input byte picks how the stream is cut into
// reads and what the rest is: (0x80) bodies, each after a u8 length, that get correct frame lengths
// here; (0x40) the numbers of one op message (dtype, buffers, offsets, count), so that mutations
// explore sizes and offsets instead of breaking JSON; else the raw stream. Each message that parses
// is checked the way the bridge uses it: an op's buffer view must either be refused or lie inside
// the mapped buffer it names; a mapfd's path must be refused or be a /proc/<pid>/fd/<n> path.
import { BridgeProtocolError, fdPath, FrameReader, parseMessage, ProtocolError, viewOf } from "./.build/bridge.mjs";

import { framed } from "./framing.mjs";

const buffers = new Map([
  [0, new ArrayBuffer(0)],
  [1, new ArrayBuffer(4096)],
  [7, new ArrayBuffer(24)],
]);

function expected(e) {
  if (!(e instanceof BridgeProtocolError || e instanceof ProtocolError)) throw e;
}

function checkOp(m) {
  for (const [id, offset, count] of [[m.buf, m.offset, m.count ?? 0], [m.out, m.outOffset, m.count ?? 0]]) {
    try {
      const a = viewOf(buffers, id, offset, count, m.dtype ?? "f32");
      const buf = buffers.get(id);
      if (a.buffer !== buf || a.byteOffset + a.byteLength > buf.byteLength) throw new Error("view outside its buffer");
    } catch (e) {
      expected(e);
    }
  }
}

function checkFd(m) {
  try {
    if (!/^\/proc\/\d+\/fd\/\d+$/.test(fdPath(m))) throw new Error(`mapfd path outside /proc/<pid>/fd: ${fdPath(m)}`);
  } catch (e) {
    expected(e);
  }
}

// An op message built from the input's bytes: the numbers a client controls.
function opFrom(bytes) {
  const b = Buffer.concat([bytes, Buffer.alloc(16)]);
  const msg = {
    t: "op",
    req: 1,
    coll: "allgather",
    dtype: ["f32", "f64", "i32", "i64", "u8"][b[0] % 5],
    buf: b[1] % 9,
    offset: b.readInt32BE(2),
    count: b.readInt32BE(6),
    out: b[10] % 9,
    outOffset: b.readInt32BE(11),
  };
  const body = Buffer.from(JSON.stringify(msg));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

export function fuzz(input) {
  if (input.length < 1) return;
  const step = 1 + (input[0] % 64);
  const rest = input.subarray(1);
  const data = input[0] & 0x80 ? framed(rest) : input[0] & 0x40 ? opFrom(rest) : rest;
  const reader = new FrameReader();
  try {
    for (let i = 0; i < data.length; i += step) {
      for (const body of reader.push(data.subarray(i, i + step))) {
        try {
          const m = parseMessage(body);
          if (m.t === "op") checkOp(m);
          if (m.t === "mapfd") checkFd(m);
        } catch (e) {
          expected(e);
        }
      }
    }
  } catch (e) {
    expected(e);
  }
}
