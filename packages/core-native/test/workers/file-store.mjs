// Joins a world through a rendezvous backend of the test's own: files in a shared directory.
// argv: directory. Started with UNICC_RANK, UNICC_SIZE and a dummy UNICC_STORE_ADDR.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { init } from "@unicc/core";

const dir = process.argv[2];
const file = (key) => join(dir, encodeURIComponent(key));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fileStore = {
  localAddress: "127.0.0.1",
  async set(key, value) {
    writeFileSync(`${file(key)}.tmp${process.pid}`, value);
    renameSync(`${file(key)}.tmp${process.pid}`, file(key));
  },
  async get(key, timeoutMs) {
    for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(10))
      if (existsSync(file(key))) return readFileSync(file(key));
    throw new Error(`file store: ${key} did not appear`);
  },
  // Only per-rank counters are added to, so no two ranks race on one key.
  async add(key, delta) {
    const now = (existsSync(file(key)) ? Number(readFileSync(file(key), "utf8")) : 0) + delta;
    await this.set(key, String(now));
    return now;
  },
  close() {},
};

const world = await init({ store: fileStore });
const buf = new Float64Array([world.rank + 1, 2 * (world.rank + 1)]);
await world.allreduce(buf);
console.log(`SUM ${buf[0]} ${buf[1]}`);
await world.close();
