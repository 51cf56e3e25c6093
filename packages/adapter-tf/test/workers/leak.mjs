// Tensor counts after each custom-loop step and each fit epoch: they must stay flat once the
// optimizer has made its state. Prints "COUNTS {minimize: [...], fit: [...]}".
import { init } from "@unicc/core";
import { DistributedOptimizer } from "@unicc/tf";
import { buildModel, emit, randomTensor, tf, useBackend } from "./common.mjs";

await useBackend();
const world = await init();
const model = buildModel(9);
const opt = new DistributedOptimizer(tf.train.adam(0.01), world);
const x = randomTensor(60 + world.rank, [64, 12]), y = randomTensor(70 + world.rank, [64, 4]);
const minimize = [];
for (let i = 0; i < 12; i++) {
  tf.tidy(() => opt.minimize(() => tf.losses.meanSquaredError(y, model.apply(x))));
  minimize.push(tf.memory().numTensors);
}
model.compile({ optimizer: opt, loss: "meanSquaredError", metrics: ["mae"] });
const fit = [];
await model.fit(x, y, {
  batchSize: 16,
  epochs: 6,
  verbose: 0,
  callbacks: { onEpochEnd: () => void fit.push(tf.memory().numTensors) },
});
emit("COUNTS", { minimize, fit, steps: opt.stats.steps });
await world.close();
