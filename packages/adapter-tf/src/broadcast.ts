import { dispose, tensor, type DataType, type Optimizer, type Tensor, type Variable } from "@tensorflow/tfjs-core";

import { checkLayout, elementCount, type Comm } from "./layout.js";
import type { NamedTensor } from "./optimizer.js";

/** Anything with Keras-style weight access: a tf.LayersModel, a tf.Sequential, a layer. */
export interface HasWeights {
  getWeights(): Tensor[];
  setWeights(weights: Tensor[]): void;
  readonly weights?: readonly { name: string }[];
}

// Float64 holds float32, int32 and bool values exactly, so one broadcast carries them all.
const ARRAY_OF = { float32: Float32Array, int32: Int32Array, bool: Uint8Array } as const;

function pack(tensors: readonly Tensor[]): Float64Array {
  const odd = tensors.find((t) => !(t.dtype in ARRAY_OF));
  if (odd) throw new Error(`unicc/tf: cannot broadcast a ${odd.dtype} tensor (float32, int32 and bool only)`);
  const buf = new Float64Array(tensors.reduce((n, t) => n + t.size, 0));
  let at = 0;
  for (const t of tensors) {
    buf.set(t.dataSync(), at);
    at += t.size;
  }
  return buf;
}

function unpack(buf: Float64Array, specs: readonly { shape: number[]; dtype: DataType }[]): Tensor[] {
  let at = 0;
  return specs.map(({ shape, dtype }) => {
    const n = elementCount(shape);
    const t = tensor(ARRAY_OF[dtype as keyof typeof ARRAY_OF].from(buf.subarray(at, at + n)), shape, dtype);
    at += n;
    return t;
  });
}

/**
 * Copies the weights of rank `root` (default 0) into every rank's model or variables, so that
 * all ranks start identical. Checks first that the ranks' weights have the same shapes, failing
 * on every rank with the first differing weight named.
 */
export async function broadcastWeights(target: HasWeights | readonly Variable[], comm: Comm, opts: { root?: number } = {}): Promise<void> {
  const root = opts.root ?? 0;
  const isModel = !Array.isArray(target);
  const values: Tensor[] = isModel ? (target as HasWeights).getWeights() : [...(target as readonly Variable[])];
  const names = isModel ? values.map((_, i) => (target as HasWeights).weights?.[i]?.name ?? `weight ${i}`) : values.map((v) => (v as Variable).name);
  checkLayout(comm, values.map((v, i) => ({ name: names[i], shape: v.shape })), "the weights to broadcast");
  const buf = pack(values);
  await comm.broadcast(buf, { root });
  if (comm.rank === root) return;
  const received = unpack(buf, values);
  if (isModel) (target as HasWeights).setWeights(received);
  else (target as readonly Variable[]).forEach((v, i) => v.assign(received[i]));
  dispose(received);
}

interface StateSpec {
  name: string;
  shape: number[];
  dtype: DataType;
}

/**
 * Copies rank `root`'s optimizer state (`getWeights()`: the iteration count and, for adam,
 * momentum or rmsprop, the accumulators) into every rank's optimizer with `setWeights()`. The
 * root's layout travels too, so a rank whose optimizer has no state yet (no step taken) gets it;
 * call it after loading a checkpoint on the root, or to make sure ranks start alike. Every rank,
 * the root included, ends with state loaded through `setWeights()`.
 */
export async function broadcastOptimizerState(optimizer: Optimizer, comm: Comm, opts: { root?: number } = {}): Promise<void> {
  const root = opts.root ?? 0;
  const before = await optimizer.getWeights();
  const isRoot = comm.rank === root;
  const specs: StateSpec[] = before.map(({ name, tensor: t }) => ({ name, shape: t.shape, dtype: t.dtype }));
  const desc = isRoot ? new TextEncoder().encode(JSON.stringify(specs)) : new Uint8Array();
  const header = Int32Array.of(desc.length);
  await comm.broadcast(header, { root });
  const descInts = Int32Array.from(isRoot ? desc : new Uint8Array(header[0]));
  await comm.broadcast(descInts, { root });
  const rootSpecs: StateSpec[] = isRoot ? specs : JSON.parse(new TextDecoder().decode(Uint8Array.from(descInts)));
  const buf = isRoot ? pack(before.map((w) => w.tensor)) : new Float64Array(rootSpecs.reduce((n, s) => n + elementCount(s.shape), 0));
  await comm.broadcast(buf, { root });

  // The root loads its own state back as well: setWeights() derives values (adam's powers of the
  // betas) differently from how training accumulates them, and every rank must hold the same ones.
  const received = unpack(buf, rootSpecs);
  await optimizer.setWeights(received.map((t, i) => ({ name: rootSpecs[i].name, tensor: t })));
  dispose(received);
  // tfjs optimizers replace their state variables in setWeights without disposing the old ones,
  // and getWeights() makes a fresh iteration scalar on each call.
  const after = await optimizer.getWeights();
  const kept = new Set(after.map((w) => w.tensor));
  dispose(before.map((w) => w.tensor).filter((t) => !kept.has(t)));
  dispose(after.filter((w) => !(w.tensor as Variable).assign).map((w) => w.tensor));
}
