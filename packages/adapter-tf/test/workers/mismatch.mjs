// The last rank builds a wider hidden layer. broadcastWeights and the first training step must
// both fail on every rank, naming the variable; the world stays usable, so every rank reports
// before any exits.
import { init } from "@unicc/core";
import { broadcastWeights, DistributedOptimizer } from "@unicc/tf";
import { buildModel, randomTensor, tf, useBackend } from "./common.mjs";

await useBackend();
const world = await init();
const model = buildModel(3, { hidden: world.rank === world.size - 1 ? 9 : 8, nameShift: world.rank });
try {
  await broadcastWeights(model, world);
  console.log("BROADCAST-OK");
} catch (e) {
  console.log(`BROADCAST-ERROR ${e.message}`);
}
model.compile({ optimizer: new DistributedOptimizer(tf.train.adam(), world), loss: "meanSquaredError" });
try {
  await model.fit(randomTensor(1, [8, 12]), randomTensor(2, [8, 4]), { batchSize: 8, epochs: 1, verbose: 0 });
  console.log("FIT-OK");
} catch (e) {
  console.log(`FIT-ERROR ${e.message}`);
}
await world.barrier();
await world.close();
