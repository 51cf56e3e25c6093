// One rank of the collectives test. Every rank can regenerate every rank's input, so it checks
// its result against a reference it computes itself: its share of the indices (i % size ==
// rank), and it prints a digest of the whole result that the test compares across ranks.
import { createHash } from "node:crypto";
import { init } from "@unicc/core";

import { word } from "./seeded.mjs";

const sizes = process.argv[2].split(",").map(Number);
// Optional: before each collective one rank (a different one each time) comes this many ms late,
// so the others' calls cannot finish where they started (the core's thread finishes them).
const lateMs = Number(process.argv[3] ?? 0);
const world = await init();
const { rank, size } = world;

const unit = (seed, r, i) => word(seed, r, i) / 4294967296; // [0, 1)

const DTYPES = {
  float32: {
    Ctor: Float32Array,
    value: (s, r, i, op) => (op === "product" ? 0.5 + 1.5 * unit(s, r, i) : Math.fround(unit(s, r, i) * 2 - 1)),
  },
  float64: {
    Ctor: Float64Array,
    value: (s, r, i, op) => (op === "product" ? 0.5 + 1.5 * unit(s, r, i) : unit(s, r, i) * 2e3 - 1e3),
  },
  int32: { Ctor: Int32Array, value: (s, r, i) => word(s, r, i) | 0 },
  int64: {
    Ctor: BigInt64Array,
    value: (s, r, i) => BigInt.asIntN(64, (BigInt(word(s, r, i)) << 32n) | BigInt(word(s + 7, r, i))),
  },
};

function fill(dtype, seed, r, n, op) {
  const { Ctor, value } = DTYPES[dtype];
  const a = new Ctor(n);
  for (let i = 0; i < n; i++) a[i] = value(seed, r, i, op);
  return a;
}

// Reference reduction of element i over all ranks, computed here independently of the core.
function reference(dtype, op, seed, i) {
  const v = (r) => DTYPES[dtype].value(seed, r, i, op);
  if (dtype === "int64") {
    let acc = v(0);
    for (let r = 1; r < size; r++) {
      const x = v(r);
      if (op === "sum" || op === "average") acc = BigInt.asIntN(64, acc + x);
      else if (op === "product") acc = BigInt.asIntN(64, acc * x);
      else if (op === "min") acc = x < acc ? x : acc;
      else acc = x > acc ? x : acc;
    }
    return { value: op === "average" ? acc / BigInt(size) : acc, tol: 0 };
  }
  let acc = v(0);
  let mag = Math.abs(acc);
  for (let r = 1; r < size; r++) {
    const x = v(r);
    mag += Math.abs(x);
    if (dtype === "int32") {
      if (op === "sum" || op === "average") acc = (acc + x) | 0;
      else if (op === "product") acc = Math.imul(acc, x);
      else acc = op === "min" ? Math.min(acc, x) : Math.max(acc, x);
    } else if (op === "sum" || op === "average") acc += x;
    else if (op === "product") { acc *= x; mag = Math.abs(acc); }
    else acc = op === "min" ? Math.min(acc, x) : Math.max(acc, x);
  }
  if (op === "average") acc = dtype === "int32" ? Math.trunc(acc / size) : acc / size;
  const eps = dtype === "float32" ? 2 ** -23 : dtype === "float64" ? 2 ** -52 : 0;
  // Any summation order is within size * eps * sum(|x|) of the exact sum.
  return { value: acc, tol: (size + 1) * eps * (op === "average" ? mag / size : mag) };
}

function fail(msg) {
  console.error(`FAIL rank ${rank}: ${msg}`);
  process.exit(1);
}

function check(name, got, expected, tol, i) {
  const bad = typeof got === "bigint" ? got !== expected : !(Math.abs(got - expected) <= tol);
  if (bad) fail(`${name}: element ${i} is ${got}, expected ${expected} (tolerance ${tol})`);
}

function report(name, arr) {
  const digest = createHash("sha1").update(Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength)).digest("hex");
  console.log(`CASE ${name} ok ${digest}`);
}

let seed = 1;
let sync = false;
const maybeLate = () => lateMs && seed % size === rank ? new Promise((r) => setTimeout(r, lateMs)) : undefined;
for (const n of sizes) {
  for (const dtype of Object.keys(DTYPES)) {
    for (const op of ["sum", "average", "min", "max", "product"]) {
      seed++;
      sync = !sync; // alternate the promise and the blocking variants
      const buf = fill(dtype, seed, rank, n, op);
      await maybeLate();
      if (sync) world.allreduceSync(buf, { op });
      else {
        const same = await world.allreduce(buf, { op });
        if (same !== buf) fail("allreduce did not resolve to the caller's array");
      }
      const name = `allreduce/${dtype}/${op}/${n}`;
      for (let i = rank; i < n; i += size) {
        const { value, tol } = reference(dtype, op, seed, i);
        check(name, buf[i], value, tol, i);
      }
      report(name, buf);
    }
    for (const root of new Set([0, size - 1])) {
      seed++;
      const buf = rank === root ? fill(dtype, seed, root, n) : fill(dtype, seed + 1000, rank, n);
      await maybeLate();
      await world.broadcast(buf, { root });
      const name = `broadcast/${dtype}/root${root}/${n}`;
      for (let i = rank; i < n; i += size) check(name, buf[i], DTYPES[dtype].value(seed, root, i), 0, i);
      report(name, buf);
    }
    seed++;
    const mine = fill(dtype, seed, rank, n);
    const all = sync ? world.allgatherSync(mine) : await world.allgather(mine);
    const name = `allgather/${dtype}/${n}`;
    if (all.length !== n * size) fail(`${name}: output length ${all.length}`);
    for (let j = rank; j < n * size; j += size) {
      check(name, all[j], DTYPES[dtype].value(seed, Math.floor(j / n), j % n), 0, j);
    }
    report(name, all);
  }
}
await world.barrier();
world.barrierSync();
console.log(`DONE rank ${rank} of ${size} via ${world.algorithm}`);
await world.close();
