// A small coverage-guided fuzzer for the TypeScript parsers, our own, because Jazzer.js's native
// part does not load here (its prebuilt addon needs glibc 2.38; Debian 12 has 2.36) and it ships
// no sources to build. The loop is libFuzzer's: mutate an input of the corpus, run the target,
// keep the input if it reached new code. "New code" is V8's block coverage (node:inspector,
// precise coverage with per-block counts, bucketed like libFuzzer's counters) of the target's
// own script. A target exports fuzz(data: Buffer) and throws on a bug; exceptions it expects it
// catches itself.
//
//   node jsfuzz.mjs <target.mjs> <seconds> <work corpus dir> [seed corpus dir...]
// New inputs go to the work corpus; a failing input is written to crash-<sha1> in the work
// corpus's parent and the exit code is 1.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [targetPath, secondsArg, workDir, ...seedDirs] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!targetPath || !(seconds > 0) || !workDir) {
  console.error("usage: node jsfuzz.mjs <target.mjs> <seconds> <work corpus dir> [seed corpus dir...]");
  process.exit(2);
}
const MAX_LEN = 4096;

const session = new Session();
session.connect();
const post = (method, params = {}) => {
  let out, err;
  session.post(method, params, (e, r) => ((err = e), (out = r)));
  if (err) throw err;
  return out; // the main-thread session answers synchronously
};
post("Profiler.enable");
post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });

const target = await import(pathToFileURL(resolve(targetPath)).href);
// Coverage of the target's own code and what it bundles: every script under the harness's folder.
const scope = pathToFileURL(dirname(resolve(targetPath))).href;

const bucket = (n) => (n === 0 ? 0 : n < 4 ? n : n < 8 ? 4 : n < 16 ? 5 : n < 32 ? 6 : n < 128 ? 7 : 8);
function features() {
  const out = [];
  for (const script of post("Profiler.takePreciseCoverage").result) {
    if (!script.url.startsWith(scope)) continue;
    for (const fn of script.functions)
      for (const r of fn.ranges) if (r.count > 0) out.push(`${script.url}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`);
  }
  return out;
}

const seen = new Set();
const corpus = [];
mkdirSync(workDir, { recursive: true });
function run(input) {
  features(); // reset the counters: what follows is this input's alone
  try {
    target.fuzz(input);
  } catch (e) {
    const name = `crash-${createHash("sha1").update(input).digest("hex")}`;
    writeFileSync(join(dirname(resolve(workDir)), name), input);
    console.error(`CRASH on ${input.length}-byte input, saved as ${name}:\n${e?.stack ?? e}`);
    process.exit(1);
  }
  let fresh = false;
  for (const f of features()) if (!seen.has(f)) (seen.add(f), (fresh = true));
  return fresh;
}
function keep(input, save) {
  corpus.push(input);
  if (save) writeFileSync(join(workDir, createHash("sha1").update(input).digest("hex")), input);
}

for (const dir of [workDir, ...seedDirs])
  for (const f of readdirSync(dir)) {
    const input = readFileSync(join(dir, f));
    if (run(input) || corpus.length === 0) keep(input, false);
  }
if (!corpus.length) keep(Buffer.alloc(0), false);

// Mutations in the spirit of libFuzzer's: bytes, runs, interesting integers, splices.
const rnd = (n) => Math.floor(Math.random() * n);
const INTERESTING = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0x3ff, 0x400, 0x401, 0xffff, 0x4000000, 0x4000001, 0x7fffffff, 0xffffffff];
function mutate(src) {
  let b = Buffer.from(src);
  for (let k = 1 + rnd(4); k > 0; k--) {
    const at = rnd(b.length + 1);
    switch (rnd(8)) {
      case 0: if (b.length) b[rnd(b.length)] ^= 1 << rnd(8); break;
      case 1: if (b.length) b[rnd(b.length)] = rnd(256); break;
      case 2: b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + rnd(8) }, () => rnd(256))), b.subarray(at)]); break;
      case 3: if (b.length) b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rnd(16)))]); break;
      case 4: {
        const v = INTERESTING[rnd(INTERESTING.length)], w = [1, 2, 4][rnd(3)];
        if (b.length >= w) {
          const o = rnd(b.length - w + 1);
          if (w === 1) b[o] = v & 0xff; else if (w === 2) b.writeUInt16BE(v & 0xffff, o); else b.writeUInt32BE(v >>> 0, o);
        }
        break;
      }
      case 5: { // copy a run of the input elsewhere in it
        if (b.length < 2) break;
        const from = rnd(b.length), len = 1 + rnd(Math.min(32, b.length - from));
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]);
        break;
      }
      case 6: { // splice with another corpus input
        const other = corpus[rnd(corpus.length)];
        b = Buffer.concat([b.subarray(0, at), other.subarray(rnd(other.length + 1))]);
        break;
      }
      case 7: if (b.length) b = b.subarray(0, rnd(b.length)); break;
    }
  }
  return b.length > MAX_LEN ? b.subarray(0, MAX_LEN) : b;
}

const t0 = Date.now();
let execs = 0;
let lastReport = t0;
while (Date.now() - t0 < seconds * 1000) {
  const input = mutate(corpus[rnd(corpus.length)]);
  execs++;
  if (run(input)) keep(input, true);
  if (Date.now() - lastReport > 5000) {
    lastReport = Date.now();
    console.log(`#${execs} cov: ${seen.size} corp: ${corpus.length} exec/s: ${Math.round(execs / ((lastReport - t0) / 1000))}`);
  }
}
console.log(`DONE ${execs} runs in ${seconds} s, cov: ${seen.size} corp: ${corpus.length}, no crash`);
