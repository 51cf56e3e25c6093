// Runs train.mjs at 1, 2 and 4 ranks on each backend (one job at a time) and prints a markdown
// table of images/s and where the step time went:
//
//   node examples/tfjs-mnist/bench.mjs [--ranks 1,2,4] [--backends wasm,cpu,tensorflow]
//                                      [-- <train.mjs options, e.g. --epochs 4>]
//
// The first epoch is a warm-up and is left out of the averages.
import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({ options: { ranks: { type: "string", default: "1,2,4" }, backends: { type: "string", default: "wasm" } }, allowPositionals: true });
const trainArgs = positionals.length ? positionals : ["--epochs", "4"];
const cli = fileURLToPath(new URL("./cli.js", import.meta.resolve("@unicc/core")));
const train = fileURLToPath(new URL("./train.mjs", import.meta.url));

function run(np, backend) {
  return new Promise((resolve, reject) => {
    const args = [cli, "run", "-np", String(np), "--", "node", train, "--backend", backend, ...trainArgs];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      process.stderr.write(d);
    });
    child.on("close", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("[0] summary "));
      if (code !== 0 || !line) reject(new Error(`${backend}, ${np} ranks: exit ${code}, no summary`));
      else resolve(JSON.parse(line.slice("[0] summary ".length)));
    });
  });
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const rows = [];
for (const backend of values.backends.split(",")) for (const np of values.ranks.split(",").map(Number)) {
  const s = await run(np, backend);
  const timed = s.epochs.length > 1 ? s.epochs.slice(1) : s.epochs;
  const seconds = mean(timed.map((e) => e.seconds)), steps = mean(timed.map((e) => e.steps));
  rows.push({
    np,
    backend: s.backend,
    ips: mean(timed.map((e) => e.imagesPerSecond)),
    stepMs: (1000 * seconds) / steps,
    allreduce: mean(timed.map((e) => e.allreduceFraction)),
    copy: mean(timed.map((e) => e.copyFraction)),
    accuracy: s.epochs.at(-1).testAccuracy,
  });
}
console.log(`\n${cpus().length} cores (${cpus()[0].model}); train.mjs ${trainArgs.join(" ")}; means over epochs 2..n\n`);
console.log("| ranks | backend | images/s | speed-up | step (ms) | allreduce share of step | gradient copy share | test accuracy |");
console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  const base = rows.find((b) => b.backend === r.backend).ips; // the backend's first (fewest ranks) row
  console.log(`| ${r.np} | ${r.backend} | ${Math.round(r.ips)} | ${(r.ips / base).toFixed(2)}x | ${r.stepMs.toFixed(1)} | ` +
    `${(100 * r.allreduce).toFixed(1)}% | ${(100 * r.copy).toFixed(1)}% | ${(100 * r.accuracy).toFixed(2)}% |`);
}
