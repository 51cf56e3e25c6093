// Each rank fills buffers with random values from a seed every rank knows, allreduces them,
// and checks the result against a sum it computes itself. Run: unicc run -np 4 node index.mjs
import { init } from "@unicc/core";

const world = await init();
const { rank, size } = world;

// xorshift32 seeded by (step, rank): every rank can regenerate every other rank's input.
function values(step, r, n) {
  const a = new Float32Array(n);
  let x = (step * 7919 + r * 104729 + 1) >>> 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    a[i] = (x % 2001) - 1000; // integers: float32 sums of them are exact, in any order
  }
  return a;
}

const n = 4 << 20; // 16 MiB of float32 per step
const steps = 10;
let busy = 0;
for (let step = 0; step < steps; step++) {
  const buf = values(step, rank, n);
  await world.barrier(); // time the exchange, not the other ranks' checking
  const t0 = performance.now();
  await world.allreduce(buf, { op: "sum" });
  busy += performance.now() - t0;
  const expected = values(step, 0, n);
  for (let r = 1; r < size; r++) {
    const other = values(step, r, n);
    for (let i = 0; i < n; i++) expected[i] += other[i];
  }
  for (let i = 0; i < n; i++) {
    if (buf[i] !== expected[i]) {
      console.error(`rank ${rank}: step ${step} element ${i} is ${buf[i]}, expected ${expected[i]}`);
      process.exit(1);
    }
  }
  if (rank === 0) {
    const gbps = ((n * 4 * (step + 1)) / (busy / 1000)) / 1e9;
    console.log(`step ${step + 1}/${steps}: ${size} ranks agree on ${n} values; allreduce ${gbps.toFixed(2)} GB/s algorithm bandwidth`);
  }
}
await world.close();
if (rank === 0) console.log(`OK: ${steps} allreduces of ${(n * 4) / 2 ** 20} MiB on ${size} ranks (${world.algorithm}), every value checked`);
