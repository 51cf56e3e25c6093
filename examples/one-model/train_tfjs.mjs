// The one-model classifier with TensorFlow.js through @unicc/tf; rank 0 saves tfjs's artifacts,
// which unicc.tensorflow.tfjs_onnx turns into ONNX (run.sh does both).
//   unicc run -np 4 node examples/one-model/train_tfjs.mjs --out tfjs-model/ [--epochs 2] [--backend wasm]
import { parseArgs } from "node:util";

import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import { init } from "@unicc/core";
import { loadDigits, numpyPermutation } from "@unicc/eval-onnx";
import { broadcastWeights, DistributedOptimizer } from "@unicc/tf";

import { saveLayersModel } from "./save-tfjs.mjs";

// As common.py: 784-128-10, Adam 1e-3, global batch 64, the same 8000 images and shuffles.
const HIDDEN = 128, BATCH = 64, LR = 1e-3;
const { values: opts } = parseArgs({ options: { epochs: { type: "string", default: "2" }, out: { type: "string" }, backend: { type: "string", default: "wasm" } } });
if (!opts.out) throw new Error("--out DIR is required");
if (!(await tf.setBackend(opts.backend))) throw new Error(`--backend ${opts.backend} did not start`);
const world = await init();
const { rank, size } = world;
const data = loadDigits("train");
const perRank = BATCH / size, steps = Math.floor(data.count / BATCH);

const model = tf.sequential({
  layers: [
    tf.layers.dense({ inputShape: [784], units: HIDDEN, activation: "relu", kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
    tf.layers.dense({ units: 10, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }), // logits, as the other frameworks
  ],
});
await broadcastWeights(model, world);
model.compile({ optimizer: new DistributedOptimizer(tf.train.adam(LR), world), loss: (y, logits) => tf.losses.softmaxCrossEntropy(y, logits) });

let seconds = 0;
const epochs = Number(opts.epochs);
for (let epoch = 0; epoch < epochs; epoch++) {
  // common.py's batches(): np.random.RandomState(1000 + epoch).permutation, this rank's slice of each global batch.
  const order = numpyPermutation(data.count, 1000 + epoch);
  const mine = [];
  for (let s = 0; s < steps; s++) mine.push(...order.subarray(s * BATCH + rank * perRank, s * BATCH + (rank + 1) * perRank));
  const x = new Float32Array(mine.length * 784);
  mine.forEach((k, i) => x.set(data.features.subarray(k * 784, (k + 1) * 784), i * 784));
  const xs = tf.tensor2d(x, [mine.length, 784]);
  const ys = tf.oneHot(tf.tensor1d(mine.map((k) => data.labels[k]), "int32"), 10);
  const t0 = performance.now();
  await model.fit(xs, ys, { batchSize: perRank, epochs: 1, shuffle: false, verbose: 0 });
  seconds += (performance.now() - t0) / 1000;
  tf.dispose([xs, ys]);
}
if (rank === 0) {
  const test = loadDigits("test");
  const predicted = tf.tidy(() => model.predict(tf.tensor2d(test.features, [test.count, 784])).argMax(-1).dataSync());
  const ownAccuracy = predicted.filter((p, i) => p === test.labels[i]).length / test.count;
  console.log(`one-model: ${JSON.stringify({ framework: "tfjs", ranks: size, ownAccuracy, imagesPerSecond: (epochs * steps * BATCH) / seconds })}`);
  await saveLayersModel(model, opts.out);
}
await world.barrier();
await world.close();
