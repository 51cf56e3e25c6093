// Fuzz target (jsfuzz.mjs): bytes a stranger sends to the store, or a store sends to a client.
// run.sh bundles src/ts/store/protocol.ts into .build/protocol.mjs next to it, so that its
// coverage counts. The first input byte picks how the stream is cut into reads, and (its top bit)
// whether the input is the raw stream, or bodies (each after a u8 length) that get correct frame
// lengths here, so that mutations inside a body reach the parsers instead of breaking framing.
import { encodeRequest, FrameReader, parseRequest, parseResponse, ProtocolError } from "./.build/protocol.mjs";

import { framed } from "./framing.mjs";

function expected(e) {
  if (!(e instanceof ProtocolError)) throw e; // anything else is a bug: a crash, not a refusal
}

export function fuzz(input) {
  if (input.length < 1) return;
  const step = 1 + (input[0] % 64);
  const data = Buffer.concat([input.subarray(0, 1), input[0] & 0x80 ? framed(input.subarray(1)) : input.subarray(1)]);
  const reader = new FrameReader();
  try {
    for (let i = 1; i < data.length; i += step) {
      for (const body of reader.push(data.subarray(i, i + step))) {
        try {
          const req = parseRequest(body);
          // What parses re-encodes to the same bytes (when its key is valid UTF-8).
          const klen = body.readUInt16BE(5);
          if (Buffer.from(req.key, "utf8").equals(body.subarray(7, 7 + klen))) {
            const again = encodeRequest(req.op, req.id, req.key, body.subarray(7 + klen));
            if (!again.subarray(4).equals(body)) throw new Error("request does not round-trip");
          }
        } catch (e) {
          expected(e);
        }
        try {
          parseResponse(body);
        } catch (e) {
          expected(e);
        }
      }
    }
  } catch (e) {
    expected(e);
  }
}
