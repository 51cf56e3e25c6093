// One rank of unicc's side of `unicc-bench`, started by the launcher. It times allreduce exactly as
// peers/ time Gloo and Open MPI: per size, `warmup` then `iters` x (restore input, barrier,
// the plan's gap of compute, t0, allreduce, t1); rank 0 prints the median as one JSON line on stdout, and "progress IMPL
// BYTES DONE/ITERS" on stderr at most once a second. argv: the plan (plan.ts).
import { init } from "@unicc/core";
import { busbwGBps, computeFor, decodePlan, median } from "./plan.js";

const SUM = { op: "sum" } as const;
const plan = decodePlan(process.argv[2] ?? "");
const world = await init();
const lead = world.rank === 0;

for (const { bytes, iters, warmup, gapUs } of plan) {
  const input = new Float32Array(bytes / 4);
  for (let i = 0; i < input.length; i++) input[i] = Math.random();
  const buf = new Float32Array(input.length);
  // "unicc" is the promise API; "unicc-sync" the blocking call, which has no event-loop wake-up.
  for (const impl of ["unicc", "unicc-sync"] as const) {
    const times: number[] = [];
    let lastReport = Date.now();
    for (let i = -warmup; i < iters; i++) {
      // Summing the result again and again would overflow to inf; every run reduces the same data.
      buf.set(input);
      // The blocking barrier, as MPI_Barrier and dist.barrier are: every rank leaves it at once,
      // where the promise one settles on each rank whenever its event loop wakes, so rank 0's
      // clock would start while its peers are still waking.
      world.barrierSync();
      if (gapUs) computeFor(gapUs);
      const t0 = process.hrtime.bigint();
      if (impl === "unicc") await world.allreduce(buf, SUM);
      else world.allreduceSync(buf, SUM);
      const t1 = process.hrtime.bigint();
      if (i < 0) continue;
      times.push(Number(t1 - t0) / 1e9);
      if (lead && Date.now() - lastReport >= 1000 && i + 1 < iters) {
        process.stderr.write(`progress ${impl} ${bytes} ${i + 1}/${iters}\n`);
        lastReport = Date.now();
      }
    }
    if (lead) {
      const m = median(times);
      const row = { impl, ranks: world.size, bytes, iters, median_s: m, busbw_GBps: busbwGBps(bytes, m, world.size) };
      process.stdout.write(`${JSON.stringify(row)}\n`);
    }
  }
}
await world.close();
