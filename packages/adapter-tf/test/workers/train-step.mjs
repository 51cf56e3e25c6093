// Training steps on fixed seeded data, through model.fit or a custom loop. Run once with
// --plain on one rank (the plain tfjs optimizer on the whole global batch: the reference) and
// once on N ranks (DistributedOptimizer, each rank with its 1/N of every global batch); the test
// compares the weights. Prints "RESULT <case> {init, final}" per case.
import { init } from "@unicc/core";
import { DistributedOptimizer, shard } from "@unicc/tf";
import { arg, buildModel, emit, randomTensor, tf, useBackend, values } from "./common.mjs";

await useBackend();
const plain = process.argv.includes("--plain");
const ranks = Number(arg("--ranks", "4")); // the job's size the reference stands for
const cases = arg("--cases", "sgd-fit,adam-fit,sgd-minimize,adam-minimize,momentum-apply").split(",");
const world = await init();
const GLOBAL = 16, STEPS = 3;

const makers = {
  sgd: () => tf.train.sgd(0.1),
  adam: () => tf.train.adam(0.01),
  momentum: () => tf.train.momentum(0.05, 0.9),
};

for (const name of cases) {
  const [kind, path] = name.split("-");
  const model = buildModel(7, { nameShift: plain ? 0 : world.rank });
  const inner = makers[kind]();
  const opt = plain ? inner : new DistributedOptimizer(inner, world, { compression: arg("--compression", "none") });
  const X = randomTensor(11, [GLOBAL * STEPS, 12]);
  const Y = randomTensor(12, [GLOBAL * STEPS, 4]);
  // z is used by the loss on rank 0 only: the other ranks have no gradient for it and send zeros,
  // so its averaged gradient is 1/ranks of rank 0's (the reference scales its term to match).
  // never is in the variable list but in no loss: it must stay as it is, even under adam.
  const z = tf.variable(randomTensor(13, [3]));
  const never = tf.variable(randomTensor(14, [5]));
  const zWeight = plain ? 1 / ranks : world.rank === 0 ? 1 : 0;
  const tracked = () => [...model.getWeights(), z, never];
  const initial = values(tracked());

  if (path === "fit") {
    model.compile({ optimizer: opt, loss: "meanSquaredError" });
    const x = plain ? X : shard(X, world);
    const y = plain ? Y : shard(Y, world);
    await model.fit(x, y, { batchSize: GLOBAL / (plain ? 1 : world.size), epochs: 1, shuffle: false, verbose: 0 });
    if (!plain) tf.dispose([x, y]);
  } else {
    for (let k = 0; k < STEPS; k++) {
      tf.tidy(() => {
        const xg = X.slice([k * GLOBAL, 0], [GLOBAL, 12]);
        const yg = Y.slice([k * GLOBAL, 0], [GLOBAL, 4]);
        const x = plain ? xg : shard(xg, world);
        const y = plain ? yg : shard(yg, world);
        const mse = () => tf.losses.meanSquaredError(y, model.apply(x));
        if (path === "minimize") {
          const loss = () => (zWeight === 0 ? mse() : mse().add(z.square().sum().mul(zWeight)));
          // sgd passes the variable list (the layers path does too); adam leaves it to minimize.
          const varList = kind === "sgd" ? [...model.trainableWeights.map((w) => w.read()), z, never] : undefined;
          opt.minimize(loss, false, varList);
        } else {
          const { grads } = tf.variableGrads(mse);
          opt.applyGradients(grads);
          tf.dispose(grads);
        }
      });
    }
  }
  emit(`RESULT ${name}`, { init: initial, final: values(tracked()) });
  model.dispose();
  opt.dispose();
  tf.dispose([X, Y, z, never]);
}
await world.close();
