// Helpers shared by the test workers: seeded data, a small deterministic model, output lines.
import * as tf from "@tensorflow/tfjs";

import { TFJS_NODE } from "./tfjs-node.mjs";

export { tf };

export function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : process.argv[i + 1];
}

/**
 * Loads and selects --backend: cpu, wasm, or a tfjs-node package's `tensorflow` backend
 * (tensorflow: @tensorflow/tfjs-node, tensorflow-gpu: @tensorflow/tfjs-node-gpu). Prints
 * "BACKEND <tfjs backend>", with the package that provides it.
 */
export async function useBackend(id = arg("--backend", "cpu")) {
  const pkg = TFJS_NODE[id];
  if (id === "wasm") await import("@tensorflow/tfjs-backend-wasm");
  if (pkg) await import(pkg);
  const name = pkg ? "tensorflow" : id;
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} did not start`);
  const backend = tf.backend();
  const from = pkg ? ` (${backend.isGPUPackage ? TFJS_NODE["tensorflow-gpu"] : TFJS_NODE.tensorflow})` : "";
  console.log(`BACKEND ${tf.getBackend()}${from}`);
}

/** mulberry32: the same stream on every rank for the same seed. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomTensor(seed, shape, scale = 1) {
  const next = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => (next() * 2 - 1) * scale), shape);
}

/**
 * A 12 -> hidden -> 4 MLP whose weights come from `seed`. `nameShift` extra (never built) layers
 * are made first so that the variable names' counters differ between ranks, as they can in real
 * programs.
 */
export function buildModel(seed, { hidden = 16, nameShift = 0 } = {}) {
  for (let i = 0; i < nameShift; i++) tf.layers.dense({ units: 1 });
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [12], units: hidden, activation: "tanh" }),
      tf.layers.dense({ units: 4 }),
    ],
  });
  const init = model.getWeights().map((w, i) => randomTensor(seed * 100 + i, w.shape, 0.5));
  model.setWeights(init);
  tf.dispose(init);
  return model;
}

export function values(tensors) {
  return tensors.map((t) => Array.from(t.dataSync()));
}

export function emit(tag, payload) {
  console.log(`${tag} ${JSON.stringify(payload)}`);
}
