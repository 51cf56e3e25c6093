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

const small = new Float32Array(256).fill(1); // 1 KiB
const big = new Float32Array(16 << 20).fill(1); // 64 MiB
await timeEach(small, 20);
const latency = await timeEach(small, 500);
await timeEach(big, 2);
const big_s = await timeEach(big, 10);
if (world.rank === 0) console.log(`RESULT ${JSON.stringify({ latency_1k_s: latency, allreduce_64m_s: big_s })}`);
await world.close();
