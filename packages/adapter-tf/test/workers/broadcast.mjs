// Ranks start from different weights and optimizer states; after broadcastWeights and
// broadcastOptimizerState everything equals rank 0's. Prints what the test compares.
import { init } from "@unicc/core";
import { broadcastOptimizerState, broadcastWeights, DistributedOptimizer } from "@unicc/tf";
import { buildModel, emit, randomTensor, tf, values } from "./common.mjs";

const world = await init();
const model = buildModel(100 + world.rank);
const vars = [tf.variable(randomTensor(200 + world.rank, [2, 3])), tf.variable(tf.scalar(world.rank, "int32"))];
emit("BEFORE", { model: values(model.getWeights()), vars: values(vars) });
await broadcastWeights(model, world);
await broadcastWeights(vars, world);
emit("AFTER", { model: values(model.getWeights()), vars: values(vars) });

// Rank 0 trains alone for rank+2 steps: its adam has moments and an iteration count; rank 1 one
// step (other values); the others none at all (no state yet).
const adam = tf.train.adam(0.01);
const x = randomTensor(300 + world.rank, [8, 12]), y = randomTensor(400 + world.rank, [8, 4]);
const localSteps = world.rank === 0 ? 2 : world.rank === 1 ? 1 : 0;
for (let i = 0; i < localSteps; i++) adam.minimize(() => tf.losses.meanSquaredError(y, model.apply(x)));
await broadcastWeights(model, world);
const tensorsBefore = tf.memory().numTensors;
await broadcastOptimizerState(adam, world);
const state = await adam.getWeights();
emit("STATE", { iterations: adam.iterations, names: state.map((w) => w.name), values: values(state.map((w) => w.tensor)) });
tf.dispose(state[0].tensor); // getWeights' fresh iteration scalar
// Ranks that had state swap it for the root's (no growth); the others gain the root's 2 x 4.
emit("TENSORS", { grown: tf.memory().numTensors - tensorsBefore });

// From identical weights and state, a distributed step keeps the ranks identical.
const opt = new DistributedOptimizer(adam, world);
opt.minimize(() => tf.losses.meanSquaredError(y, model.apply(x)), false, model.trainableWeights.map((w) => w.read()));
emit("STEPPED", { iterations: opt.iterations, model: values(model.getWeights()) });
await world.close();
