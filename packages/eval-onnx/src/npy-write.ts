import { writeFileSync } from "node:fs";

/** Writes a little-endian .npy file (version 1) of int32 or float32 values. */
export function writeNpy(path: string, data: Int32Array | Float32Array, shape: number[]): void {
  const descr = data instanceof Int32Array ? "<i4" : "<f4";
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  // The header, with its 10-byte preamble, ends on a 64-byte boundary with a newline.
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const pre = Buffer.alloc(10);
  pre.write("\x93NUMPY", 0, "latin1");
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([pre, Buffer.from(header, "latin1"), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}
