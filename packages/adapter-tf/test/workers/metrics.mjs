// model.fit on per-rank data, with callbacks around MetricAverageCallback: "RAW" is this rank's
// own epoch logs, "AVG" what the callbacks after it (and History) see.
import { init } from "@unicc/core";
import { DistributedOptimizer, MetricAverageCallback } from "@unicc/tf";
import { buildModel, emit, randomTensor, tf } from "./common.mjs";

const world = await init();
const model = buildModel(5);
model.compile({ optimizer: new DistributedOptimizer(tf.train.sgd(0.05), world), loss: "meanSquaredError", metrics: ["mae"] });
const x = randomTensor(20 + world.rank, [32, 12]), y = randomTensor(30 + world.rank, [32, 4]);
const vx = randomTensor(40 + world.rank, [8, 12]), vy = randomTensor(50 + world.rank, [8, 4]);
const history = await model.fit(x, y, {
  batchSize: 8,
  epochs: 3,
  verbose: 0,
  validationData: [vx, vy],
  callbacks: [
    new tf.CustomCallback({ onEpochEnd: (epoch, logs) => emit("RAW", { epoch, logs: { ...logs } }) }),
    new MetricAverageCallback(world),
    new tf.CustomCallback({ onEpochEnd: (epoch, logs) => emit("AVG", { epoch, logs: { ...logs } }) }),
  ],
});
emit("HISTORY", history.history);
await world.close();
