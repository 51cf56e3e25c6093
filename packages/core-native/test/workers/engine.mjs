// One rank of the engine tests. Usage: engine.mjs <mode> [compression]
//   mixed:    named tensors of several dtypes, submitted in a different random order on every rank
//             with random pauses, over several steps; each result is checked against a reference
//             this rank computes from every rank's (reproducible) inputs
//   sync:     the same through allreduceNamedSync (one blocking call per step)
//   scale:    float32 values near 1e6 and near 1e-7 (and Inf, NaN) under 16-bit compression
//   mismatch: rank 1 submits 'w' with another length; every rank must get an error naming it,
//             and the engine must go on working
//   stall:    the last rank submits 'late' 3 s after the others (run with UNICC_STALL_WARN_S=1)
//   tune:     many steps so the tuner finishes; prints what it chose
//   tune-one: the same for a model of one 4 MiB tensor (one reduction a step, which no fusion
//             size changes), checked exactly at the end; prints the steps it took and what it chose
//   orphan:   rank 0 submits a name no other rank submits, then every rank closes
//   closing:  every rank but 0 closes at once; rank 0 then submits a name they never will and
//             prints the error and how long it took
//   balance:  local rank 1 crosses hosts over 1 TCP stream, local rank 0 over 4; a 16 MiB tensor
//             many times, checked exactly; prints the engine's settings (the host split) at the end
import { init } from "@unicc/core";

import { mix, word } from "./seeded.mjs";

const [mode, compression = "none"] = process.argv.slice(2);
if (mode === "balance") process.env.UNICC_STREAMS = process.env.UNICC_LOCAL_RANK === "1" ? "1" : "4";
const world = await init();
const { rank, size } = world;

const hashName = (s) => [...s].reduce((h, c) => mix(h ^ c.charCodeAt(0)), 17);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// Integer-valued inputs: sums are exact in every dtype, so any loss or misplacement shows.
const KINDS = [
  { Ctor: Float32Array, value: (w) => (w % 2001) - 1000 },
  { Ctor: Float64Array, value: (w) => (w % 200001) - 100000 },
  { Ctor: Int32Array, value: (w) => (w % 2000001) - 1000000 },
  { Ctor: BigInt64Array, value: (w) => BigInt((w % 2000001) - 1000000) * 1000003n },
];
const tensors = Array.from({ length: 40 }, (_, k) => {
  const name = `layer${k}.${k % 3 ? "weight" : "bias"}`;
  const h = hashName(name);
  const n = [0, 1, 7, 300, 4099, 70001, 262147][h % 7];
  return { name, n, kind: KINDS[k % KINDS.length], seed: h };
});
const input = (t, r, step) => {
  const a = new t.kind.Ctor(t.n);
  for (let i = 0; i < t.n; i++) a[i] = t.kind.value(word(t.seed + step, r, i));
  return a;
};
function expectSum(t, got, step, where) {
  const ref = input(t, 0, step);
  for (let r = 1; r < size; r++) {
    const x = input(t, r, step);
    for (let i = 0; i < t.n; i++) ref[i] += x[i];
  }
  for (let i = 0; i < t.n; i++)
    if (got[i] !== ref[i]) throw new Error(`${where}: '${t.name}'[${i}] = ${got[i]}, expected ${ref[i]}`);
}
function shuffled(list, seed) {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = word(seed, rank, i) % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

if (mode === "mixed" || mode === "sync") {
  for (let step = 0; step < 4; step++) {
    const order = shuffled(tensors, 99 + step);
    const bufs = new Map(order.map((t) => [t.name, input(t, rank, step)]));
    if (mode === "sync") {
      world.allreduceNamedSync(order.map((t) => ({ name: t.name, buf: bufs.get(t.name) })), { compression });
    } else {
      const pending = [];
      for (const t of order) {
        pending.push(world.allreduce(bufs.get(t.name), { name: t.name, compression }));
        if (word(step, rank, pending.length) % 5 === 0) await sleep(word(step, rank, 7) % 20);
      }
      await Promise.all(pending);
    }
    for (const t of tensors) expectSum(t, bufs.get(t.name), step, `step ${step} on rank ${rank}`);
  }
  console.log(`OK ${mode} ${tensors.length} tensors x 4 steps (engine: ${world.engineSettings})`);
} else if (mode === "scale") {
  // Same values on every rank: the sum is size x value, so the relative error is easy to bound.
  const n = 50_000;
  const cases = { big: 1e6, tiny: 1e-7 };
  for (const [label, magnitude] of Object.entries(cases)) {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = magnitude * (0.5 + (word(5, 0, i) % 1000) / 1000) * (i % 2 ? -1 : 1);
    const expected = Float32Array.from(a, (v) => v * size);
    await world.allreduce(a, { name: `scale.${label}`, compression });
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a[i] - expected[i]) / Math.abs(expected[i]));
    console.log(`SCALE ${label} ${compression} worst relative error ${worst.toExponential(3)}`);
  }
  const special = new Float32Array([1, Infinity, 2, NaN, -3, 4]);
  if (rank !== 0) special.set([1, 1, 2, 1, -3, 4]);
  await world.allreduce(special, { name: "scale.special", compression });
  console.log(`SPECIAL ${[...special].join(",")}`);
} else if (mode === "mismatch") {
  const w = new Float32Array(rank === 1 ? 999 : 1000).fill(1);
  // The last rank comes late: the others must not decide (and move on) before it has submitted.
  if (rank === size - 1) await sleep(300);
  try {
    await world.allreduce(w, { name: "w" });
    console.log("MISMATCH not detected");
  } catch (e) {
    console.log(`MISMATCH ${e.message}`);
  }
  const ok = new Float32Array(10).fill(rank + 1);
  await world.allreduce(ok, { name: "after" });
  console.log(`AFTER ${ok[0]}`);
  // An agreed name whose length changes on one rank later: also an error on every rank. Rank 0
  // comes first, so rounds pass in which only it holds the changed name.
  if (rank !== 0) await sleep(200);
  try {
    await world.allreduce(new Float32Array(rank === 0 ? 11 : 10), { name: "after" });
    console.log("CHANGED not detected");
  } catch (e) {
    console.log(`CHANGED ${e.message}`);
  }
  // Changed the same way on every rank (a rebuilt model, DDP's re-formed buckets): agreed anew.
  const resized = new Float32Array(12).fill(rank + 1);
  if (rank !== 0) await sleep(200);
  await world.allreduce(resized, { name: "after" });
  console.log(`RESIZED ${resized.length} ${resized[11]}`);
} else if (mode === "stall") {
  if (rank === size - 1) await sleep(3000);
  const late = new Float32Array(8).fill(1);
  await world.allreduce(late, { name: "late" });
  console.log(`STALL done ${late[0]}`);
} else if (mode === "orphan") {
  const pending = (rank === 0 ? world.allreduce(new Float32Array(4), { name: "only-on-0" }) : Promise.resolve()).then(
    () => console.log("ORPHAN completed"),
    (e) => console.log(`ORPHAN ${e.message}`),
  );
  await world.close();
  await pending;
  process.exit(0);
} else if (mode === "closing") {
  if (rank === 0) {
    await sleep(300);
    const t0 = Date.now();
    await world.allreduce(new Float32Array(4), { name: "never-on-last" }).then(
      () => console.log("CLOSING completed"),
      (e) => console.log(`CLOSING after ${Date.now() - t0} ms: ${e.message}`),
    );
  }
} else if (mode === "balance") {
  const t = { name: "big", n: 4 << 20, kind: KINDS[0], seed: 7 };
  const mine = input(t, rank, 0);
  const steps = 32;
  for (let step = 0; step < steps; step++) {
    const buf = mine.slice();
    await world.allreduce(buf, { name: t.name });
    if (step === 0 || step === steps - 1) expectSum(t, buf, 0, `step ${step} on rank ${rank}`);
  }
  console.log(`BALANCE ${world.engineSettings}`);
} else if (mode === "tune" || mode === "tune-one") {
  // "tune": with 19 MB of float32 tensors below the in-place limit, so that 4 and 16 MiB fusion
  // buffers group a step otherwise than 64 MiB ones, and the tuner tries them.
  const wide = Array.from({ length: 24 }, (_, k) => ({ name: `wide${k}`, n: 200000, kind: KINDS[0], seed: 500 + k }));
  const model = mode === "tune" ? [...tensors, ...wide] : [{ name: "only", n: 1 << 20, kind: KINDS[0], seed: 11 }];
  const bufs = model.map((t) => input(t, rank, 0));
  // Steps until every rank's tuner has settled (ranks agree on when to stop through a max).
  const tuning = () => world.allreduceSync(Int32Array.of(world.engineTuning ? 1 : 0), { op: "max" })[0];
  let steps = 0;
  for (; steps < 400 && tuning(); steps++)
    await Promise.all(model.map((t, k) => world.allreduce(bufs[k], { name: t.name, op: "max" })));
  const last = model.map((t) => input(t, rank, 1));
  await Promise.all(model.map((t, k) => world.allreduce(last[k], { name: t.name })));
  model.forEach((t, k) => expectSum(t, last[k], 1, `rank ${rank} after tuning`));
  console.log(`TUNED ${world.engineSettings}`);
  console.log(`TUNING STEPS ${steps}`);
}
await world.close();
