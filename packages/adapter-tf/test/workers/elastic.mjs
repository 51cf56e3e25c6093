// Elastic tfjs training (test/elastic.test.ts): DistributedOptimizer over an ElasticWorld, state in
// an ElasticState, the loop under runElastic.
//   elastic.mjs train --seed S --steps N --commit-every C [--kill ID@STEP] [--cut ID@STEP]
//     worker ID (UNICC_ELASTIC_ID) SIGKILLs itself in the middle of step STEP (forward done, no
//     gradient handed over), or (--cut, on an emulated host) takes its host's link down there.
//     Rank 0 prints "START step=S size=N" on each (re)start; all "FINAL [...]"; "AT start|fault <ms>"
//     time them.
//   elastic.mjs reference --seed S --steps N --schedule 0:4,4:3
//     the same steps in one process without unicc, each rank's gradient on its shard at the size
//     in effect, averaged. Prints "FINAL [...]".
import { execFileSync } from "node:child_process";

import { ElasticWorld, runElastic } from "@unicc/core";
import { DistributedOptimizer, ElasticState } from "@unicc/tf";
import { arg, buildModel, randomTensor, tf, useBackend } from "./common.mjs";

await useBackend();
const seed = Number(arg("--seed", "1"));
const steps = Number(arg("--steps", "10"));
const ROWS = 96, PER_RANK = 4;
const X = randomTensor(seed, [ROWS, 12]);
const Y = randomTensor(seed + 1, [ROWS, 4]);
const model = buildModel(seed % 1000);

/** Rank `rank`'s rows of step `step` at `size` ranks: the step's size*PER_RANK rows, dealt out. */
function shard(step, rank, size) {
  const rows = Array.from({ length: size * PER_RANK }, (_, i) => (step * 7 + i) % ROWS).filter((_, i) => i % size === rank);
  const idx = tf.tensor1d(rows, "int32");
  const out = [tf.gather(X, idx), tf.gather(Y, idx)];
  idx.dispose();
  return out;
}

const mse = (x, y) => () => tf.losses.meanSquaredError(y, model.apply(x));
const final = () => console.log(`FINAL ${JSON.stringify(model.getWeights().flatMap((w) => Array.from(w.dataSync())))}`);

if (process.argv[2] === "reference") {
  const starts = arg("--schedule", "0:1").split(",").map((p) => p.split(":").map(Number));
  const opt = tf.train.sgd(0.1);
  for (let step = 0; step < steps; step++) {
    const size = starts.filter(([s]) => s <= step).at(-1)[1];
    const perRank = Array.from({ length: size }, (_, r) => {
      const [x, y] = shard(step, r, size);
      const { grads } = tf.variableGrads(mse(x, y));
      tf.dispose([x, y]);
      return grads;
    });
    const names = Object.keys(perRank[0]);
    const avg = Object.fromEntries(names.map((n) => [n, tf.tidy(() => tf.addN(perRank.map((g) => g[n])).div(size))]));
    opt.applyGradients(avg);
    tf.dispose([...perRank.flatMap((g) => Object.values(g)), ...Object.values(avg)]);
  }
  final();
} else {
  const commitEvery = Number(arg("--commit-every", "2"));
  const [killId, killAt] = arg("--kill", "@").split("@");
  const [cutId, cutAt] = arg("--cut", "@").split("@");
  const world = await ElasticWorld.init();
  const opt = new DistributedOptimizer(tf.train.sgd(0.1), world);
  const state = new ElasticState(world, { model, optimizer: opt }, { step: 0 });
  await runElastic(world, state, async () => {
    if (world.rank === 0) console.log(`START step=${state.counters.step} size=${world.size}\nAT start ${Date.now()}`);
    while (state.counters.step < steps) {
      const [x, y] = shard(state.counters.step, world.rank, world.size);
      const loss = mse(x, y);
      if (process.env.UNICC_ELASTIC_ID === killId && String(state.counters.step) === killAt) {
        tf.tidy(() => loss().dataSync()); // forward done
        console.log(`AT fault ${Date.now()}`);
        process.kill(process.pid, "SIGKILL");
      }
      if (process.env.UNICC_ELASTIC_ID === cutId && String(state.counters.step) === cutAt) {
        console.log(`AT fault ${Date.now()}`);
        execFileSync("ip", ["link", "set", "dev", "eth0", "down"]); // the whole emulated host goes dark
      }
      try {
        opt.minimize(loss);
      } finally {
        tf.dispose([x, y]);
      }
      state.counters.step++;
      if (state.counters.step % commitEvery === 0) await state.commit();
    }
  });
  final();
  await world.close();
}
