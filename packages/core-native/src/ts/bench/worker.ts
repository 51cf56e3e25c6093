// The unicc side of `unicc bench`: one rank, timing allreduce exactly as the peers time theirs.
// argv: sizes in bytes (comma separated), time budget per size in seconds.
import { init } from "../index.js";
import { itersFor } from "./plan.js";

const [sizesArg, budgetArg] = process.argv.slice(2);
const world = await init();
const budget = Number(budgetArg ?? 1);
for (const bytes of sizesArg.split(",").map(Number)) {
  const buf = new Float32Array(bytes / 4);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.random();
  // "unicc" is the promise API; "unicc-sync" the blocking variant, which skips the event loop's wake-up.
  for (const impl of ["unicc", "unicc-sync"]) {
    const sync = impl === "unicc-sync";
    for (let w = 0; w < 2; w++) await world.allreduce(buf);
    const iters = itersFor(bytes, budget);
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      await world.barrier();
      const t0 = process.hrtime.bigint();
      if (sync) world.allreduceSync(buf);
      else await world.allreduce(buf);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    if (world.rank === 0) {
      times.sort((a, b) => a - b);
      console.log(JSON.stringify({ impl, ranks: world.size, bytes, iters, median_s: times[iters >> 1] }));
    }
  }
}
await world.close();
