// The same allreduces as python_bench.py, called from Node directly (no bridge): the baseline
// for the bridge's cost. Rank 0 prints one `RESULT {json}` line of medians in seconds.
import { init } from "@unicc/core";

const world = await init();
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];

async function timeEach(buf, iters) {
  const ts = [];
  for (let i = 0; i < iters; i++) {
    await world.barrier();
    const t0 = process.hrtime.bigint();
    await world.allreduce(buf);
    ts.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return median(ts);
}

const result = {};
for (const [key, elements, iters, warmup] of [["latency_1k_s", 256, 500, 20], ["allreduce_4m_s", 1 << 20, 50, 5], ["allreduce_64m_s", 16 << 20, 10, 2]]) {
  const buf = new Float32Array(elements).fill(1);
  await timeEach(buf, warmup);
  result[key] = await timeEach(buf, iters);
}
if (world.rank === 0) console.log(`RESULT ${JSON.stringify(result)}`);
await world.close();
