// Blocking allreduce latency on whatever world `unicc run` makes, median of rank 0 per size
// (after a barrier each time). The shared-memory channel's figures in README come from
//   UNICC_HIERARCHICAL=0 npx unicc run -H a:2,b:2 --launch-agent env node packages/core-native/bench/flat_ring.mjs
// run alternately with the build to compare against.
import { init } from "@unicc/core";

const world = await init();
for (const [elems, iters] of [[256, 400], [16384, 400], [262144, 100], [4194304, 20]]) {
  const buf = new Float32Array(elems).map((_, i) => (i % 7) - 3);
  for (let i = 0; i < 10; i++) world.allreduceSync(buf);
  const us = [];
  for (let i = 0; i < iters; i++) {
    world.barrierSync();
    const t0 = process.hrtime.bigint();
    world.allreduceSync(buf);
    us.push(Number(process.hrtime.bigint() - t0) / 1e3);
  }
  us.sort((a, b) => a - b);
  if (world.rank === 0) console.log(`${elems * 4} bytes: median ${us[us.length >> 1].toFixed(1)} us over ${iters}`);
}
await world.close();
