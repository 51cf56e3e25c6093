// Every rank makes the same mistakes; each must be refused locally with a clear error, and the
// world must still work afterwards.
import { init } from "@unicc/core";

const world = await init();
const report = async (name, fn) => {
  try {
    await fn();
    console.log(`MISUSE ${name} accepted`);
  } catch (e) {
    console.log(`MISUSE ${name} ${e.name}: ${e.message}`);
  }
};

const buf = new Float32Array(1 << 20).fill(1);
const first = world.allreduce(buf);
await report("in-flight", () => world.allreduce(buf.subarray(10, 20)));
// A blocking call claims nothing, but still refuses an array that a pending call holds.
await report("in-flight-sync", () => world.allreduceSync(buf.subarray(10, 20)));
await first;
await report("free-sync", () => world.allreduceSync(buf.subarray(10, 20)));
await report("root", () => world.broadcast(new Float32Array(4), { root: world.size }));
await report("allgather-output", () => world.allgather(new Float32Array(4), new Float32Array(5)));
await report("op", () => world.allreduce(new Float32Array(4), { op: "median" }));
await report("dtype", () => world.allreduce(new Int8Array(4)));
await report("mixed-allgather", () => world.allgather(new Float32Array(4), new Float64Array(4 * world.size)));
const check = await world.allreduce(new Int32Array([world.rank + 1]));
console.log(`STILL OK ${check[0] === (world.size * (world.size + 1)) / 2} ${buf[0] === world.size}`);
await world.close();
await report("after-close", () => world.barrier());
