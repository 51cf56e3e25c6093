import { readFileSync } from "node:fs";

import { ARRAYS, type FeatureArray, type FeatureType } from "./dataset.js";

// NumPy's .npy format, version 1 to 3: magic, version, header length, a Python dict literal
// header ({'descr': '<f4', 'fortran_order': False, 'shape': (N, 784), }), then the raw data.
const DESCRS: Record<string, FeatureType> = { "<f4": "float32", "<f8": "float64", "<i4": "int32", "<i8": "int64", "|u1": "uint8", "<u1": "uint8" };

export interface NpyArray {
  data: FeatureArray;
  type: FeatureType;
  shape: number[];
}

export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  const fail = (why: string): never => {
    throw new Error(`unicc-eval: ${source} is not an .npy file this reader takes: ${why}`);
  };
  if (bytes.length < 10 || String.fromCharCode(...bytes.subarray(0, 6)) !== "\x93NUMPY") fail("no \\x93NUMPY magic");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? fail("no descr in the header");
  const type = DESCRS[descr] ?? fail(`dtype ${descr} (take float32, float64, int32, int64 or uint8, little-endian)`);
  if (/'fortran_order':\s*True/.test(header)) fail("Fortran order (save with np.ascontiguousarray)");
  const dims = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? fail("no shape in the header");
  const shape = dims.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  const Ctor = ARRAYS[type];
  const n = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (bytes.length - offset < n * Ctor.BYTES_PER_ELEMENT) fail(`shape (${shape.join(", ")}) needs more data than the file has`);
  // Copied (Uint8Array's slice: Buffer's would be a view of a shared pool), so the array is aligned whatever the header length.
  const data = new Ctor(Uint8Array.prototype.slice.call(bytes, offset, offset + n * Ctor.BYTES_PER_ELEMENT).buffer);
  return { data, type, shape };
}

export const readNpy = (path: string): NpyArray => parseNpy(readFileSync(path), path);
