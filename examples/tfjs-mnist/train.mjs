// Data-parallel MNIST with TensorFlow.js on unicc ranks:
//
//   npx unicc run -np 4 node examples/tfjs-mnist/train.mjs [--epochs 5] [--batch 64] [--lr 0.001]
//                 [--hidden 128] [--backend wasm|cpu|tensorflow] [--train 8000] [--seed 1]
//
// Every rank shuffles the training set with the same seed each epoch and keeps every size-th
// image, so that each rank trains on its quarter (at 4 ranks) of every global batch of --batch
// images; gradients are averaged by DistributedOptimizer, so the run takes the same steps as one
// process with the same global batch. Images come from the `mnist` package (10,000 digits shipped
// in the package; nothing is downloaded). --backend tensorflow runs on tfjs-node (TensorFlow's C
// library; see packages/adapter-tf's README to install it). Rank 0 prints progress, per-epoch time, images/s, the
// share of step time spent in the allreduce, and test accuracy.
import { createRequire } from "node:module";
import { parseArgs } from "node:util";

import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { init } from "@unicc/core";
import { broadcastWeights, DistributedOptimizer, MetricAverageCallback, shard } from "@unicc/tf";

const { values: opts } = parseArgs({
  options: {
    epochs: { type: "string", default: "5" },
    batch: { type: "string", default: "64" },
    lr: { type: "string", default: "0.001" },
    hidden: { type: "string", default: "128" },
    backend: { type: "string", default: "wasm" },
    train: { type: "string", default: "8000" },
    seed: { type: "string", default: "1" },
  },
});
const EPOCHS = Number(opts.epochs), GLOBAL_BATCH = Number(opts.batch), SEED = Number(opts.seed);

if (opts.backend === "tensorflow") await import("@tensorflow/tfjs-node");
if (!(await tf.setBackend(opts.backend))) throw new Error(`--backend ${opts.backend} did not start`);
const world = await init();
const { rank, size } = world;
if (GLOBAL_BATCH % size !== 0) throw new Error(`--batch ${GLOBAL_BATCH} must be a multiple of the ${size} ranks`);
const log = (line) => rank === 0 && console.log(line);

/** mulberry32: the same stream on every rank for the same seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function permutation(n, seed) {
  const next = rng(seed), p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

// The mnist package holds each digit's images as one flat array of 28x28 pixels in [0, 1].
const PIXELS = 784;
const digits = createRequire(import.meta.url)("mnist");
const images = [], labels = [];
for (let d = 0; d < 10; d++) {
  for (let i = 0; i < digits[d].length; i++) {
    images.push(digits[d].raw.slice(i * PIXELS, (i + 1) * PIXELS));
    labels.push(d);
  }
}
// A fixed split: the same on every rank and in every run.
const order = permutation(images.length, 12345);
const trainIdx = order.slice(0, Number(opts.train));
const testIdx = order.slice(Number(opts.train));

function tensors(idx) {
  const x = new Float32Array(idx.length * PIXELS);
  idx.forEach((k, row) => x.set(images[k], row * PIXELS));
  return tf.tidy(() => ({ x: tf.tensor2d(x, [idx.length, PIXELS]), y: tf.oneHot(tf.tensor1d(idx.map((k) => labels[k]), "int32"), 10) }));
}

// Seeded so that runs (at any number of ranks) start from the same weights and can be compared.
const init0 = (k) => tf.initializers.glorotUniform({ seed: SEED * 10 + k });
const model = tf.sequential({
  layers: [
    tf.layers.dense({ inputShape: [PIXELS], units: Number(opts.hidden), activation: "relu", kernelInitializer: init0(0) }),
    tf.layers.dense({ units: 10, activation: "softmax", kernelInitializer: init0(1) }),
  ],
});
// Redundant with the seeds, but what an unseeded model or a checkpoint loaded on rank 0 needs.
await broadcastWeights(model, world);
const optimizer = new DistributedOptimizer(tf.train.adam(Number(opts.lr)), world);
model.compile({ optimizer, loss: "categoricalCrossentropy", metrics: ["accuracy"] });

// This rank's share of the test set; correct answers are summed over the ranks.
const test = tensors(shard(testIdx, world, { dropRemainder: false }));
async function testAccuracy() {
  const correct = tf.tidy(() => model.predict(test.x).argMax(-1).equal(test.y.argMax(-1)).sum().dataSync()[0]);
  const counts = await world.allreduce(Float64Array.of(correct, test.x.shape[0]), { op: "sum" });
  return counts[0] / counts[1];
}

log(`unicc MNIST: ${size} rank(s), backend ${tf.getBackend()}, ${trainIdx.length} training / ${testIdx.length} test images, ` +
  `global batch ${GLOBAL_BATCH} (${GLOBAL_BATCH / size} per rank), ${EPOCHS} epoch(s)`);
const summary = { ranks: size, backend: tf.getBackend(), epochs: [] };
for (let epoch = 0; epoch < EPOCHS; epoch++) {
  const mine = shard(permutation(trainIdx.length, SEED * 1000 + epoch).map((i) => trainIdx[i]), world);
  const { x, y } = tensors(mine);
  const batches = Math.ceil(mine.length / (GLOBAL_BATCH / size));
  const stats0 = { ...optimizer.stats };
  const t0 = performance.now();
  const history = await model.fit(x, y, {
    batchSize: GLOBAL_BATCH / size,
    epochs: 1,
    shuffle: false, // the order above is what makes the ranks' batches one global batch
    verbose: 0,
    callbacks: [
      new MetricAverageCallback(world),
      new tf.CustomCallback({
        onBatchEnd: (batch, logs) => {
          // A line at each quarter of the epoch; the epoch's own line ends it.
          if (Math.floor((4 * (batch + 1)) / batches) === Math.floor((4 * batch) / batches) || batch + 1 === batches) return;
          const s = (performance.now() - t0) / 1000;
          log(`  epoch ${epoch + 1}/${EPOCHS} ${String(Math.round((100 * (batch + 1)) / batches)).padStart(3)}%  ` +
            `loss ${logs.loss.toFixed(4)} (rank 0)  ${Math.round(((batch + 1) * GLOBAL_BATCH) / s)} img/s`);
        },
      }),
    ],
  });
  const seconds = (performance.now() - t0) / 1000;
  tf.dispose([x, y]);
  const accuracy = await testAccuracy();
  const ms = (key) => optimizer.stats[key] - stats0[key];
  const row = {
    epoch: epoch + 1,
    seconds,
    imagesPerSecond: (mine.length * size) / seconds,
    steps: optimizer.stats.steps - stats0.steps,
    allreduceFraction: ms("allreduceMs") / (seconds * 1000),
    copyFraction: ms("packMs") / (seconds * 1000),
    loss: history.history.loss[0],
    trainAccuracy: history.history.acc[0],
    testAccuracy: accuracy,
  };
  summary.epochs.push(row);
  log(`epoch ${row.epoch}/${EPOCHS}: ${seconds.toFixed(1)} s, ${Math.round(row.imagesPerSecond)} img/s, ` +
    `allreduce ${(100 * row.allreduceFraction).toFixed(1)}% of step time, loss ${row.loss.toFixed(4)}, ` +
    `train acc ${(100 * row.trainAccuracy).toFixed(2)}%, test acc ${(100 * accuracy).toFixed(2)}%`);
}
log(`summary ${JSON.stringify(summary)}`);
tf.dispose([test.x, test.y]);
await world.close();
