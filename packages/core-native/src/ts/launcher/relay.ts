import type { Readable, Writable } from "node:stream";

/** Lines up to this size go to `out` as one buffer; longer ones part by part (no copy of a huge line). */
const CONCAT_MAX = 1 << 20;
/** A line arriving in more pieces than this is joined into one, so the pieces' list stays short. */
const MAX_PARTS = 256;
const NL = Buffer.from("\n");

/**
 * Copies `input` to `out` a whole line at a time, each prefixed once, so that lines of different
 * ranks never mix. Splits on "\n" only, on bytes (a "\r" progress bar or a multi-byte character stays
 * intact); a last line without newline is passed on, with one, when the input ends. A line is held
 * until its newline however long it is (a rank's 2 MB `--json` line arrives whole): splitting it
 * would put another rank's lines inside it, and streaming it through unprefixed would have to hold
 * back every other rank meanwhile, which can deadlock a job whose ranks wait on each other.
 * Pauses the input while `out` is backed up. Resolves once the input is closed and `out` has
 * passed on its last line.
 */
export function relayLines(input: Readable, out: Writable, prefix: string): Promise<void> {
  const head = Buffer.from(prefix);
  let held: Buffer[] = [];
  const write = (parts: Buffer[], bytes: number) => {
    // Consecutive writes in one tick reach `out` in order, with nothing between them.
    let flowing = true;
    if (bytes <= CONCAT_MAX) flowing = out.write(parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes));
    else for (const p of parts) flowing = out.write(p);
    if (!flowing) {
      input.pause();
      out.once("drain", () => input.resume());
    }
  };
  const bytesOf = (parts: Buffer[]) => parts.reduce((n, p) => n + p.length, 0);
  input.on("data", (chunk: Buffer) => {
    const lines: Buffer[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      lines.push(head, ...held, chunk.subarray(start, nl + 1));
      held = [];
      start = nl + 1;
    }
    if (start < chunk.length) held.push(chunk.subarray(start));
    if (held.length > MAX_PARTS) held = [Buffer.concat(held)];
    if (lines.length) write(lines, bytesOf(lines));
  });
  input.on("error", () => {}); // a broken pipe from a dying rank ends its output; "close" follows
  return new Promise((resolve) => {
    input.once("close", () => {
      if (held.length) write([head, ...held, NL], head.length + bytesOf(held) + 1);
      // Resolves once `out` has passed on everything (a write's callback runs after those before
      // it): stdout to a pipe is asynchronous, so a launcher exiting earlier cut long output short.
      out.write(Buffer.alloc(0), () => resolve());
    });
  });
}
