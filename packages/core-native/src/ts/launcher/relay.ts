import type { Readable, Writable } from "node:stream";

/** A line longer than this is passed on in pieces rather than held back without bound. */
const MAX_HELD = 1 << 20;
const NL = Buffer.from("\n");

/**
 * Copies `input` to `out` a whole line at a time, each prefixed, so that lines of different ranks
 * never mix. Splits on "\n" only, on bytes (a "\r" progress bar or a multi-byte character stays
 * intact); a last line without newline is passed on, with one, when the input ends. Pauses the
 * input while `out` is backed up. Resolves once the input is closed and its last line handed to `out`.
 */
export function relayLines(input: Readable, out: Writable, prefix: string): Promise<void> {
  const head = Buffer.from(prefix);
  let held: Buffer[] = [];
  let heldBytes = 0;
  const write = (parts: Buffer[]) => {
    if (!out.write(parts.length === 1 ? parts[0] : Buffer.concat(parts))) {
      input.pause();
      out.once("drain", () => input.resume());
    }
  };
  input.on("data", (chunk: Buffer) => {
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      lines.push(head, ...held, chunk.subarray(start, nl + 1));
      held = [];
      heldBytes = 0;
      start = nl + 1;
    }
    if (start < chunk.length) {
      held.push(chunk.subarray(start));
      heldBytes += chunk.length - start;
    }
    if (heldBytes > MAX_HELD) {
      lines.push(head, ...held, NL);
      held = [];
      heldBytes = 0;
    }
    if (lines.length) write(lines);
  });
  input.on("error", () => {}); // a broken pipe from a dying rank ends its output; "close" follows
  return new Promise((resolve) => {
    input.once("close", () => {
      if (held.length) write([head, ...held, NL]);
      resolve();
    });
  });
}
