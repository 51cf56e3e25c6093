// Bridge cost and training-step benchmark: `npm run bench -w @unicc/torch -- [-np N]`
// (or: node bench/run.mjs [-np N] after scripts/setup-venv.sh). Runs node_bench.mjs and
// python_bench.py as unicc jobs on this host and prints a table of medians and ratios.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const args = process.argv.slice(2);
const np = args.includes("-np") ? args[args.indexOf("-np") + 1] : "2";
const cli = here("../../core-native/dist/cli.js");
// BENCH_PYTHON: another interpreter that has torch and the unicc packages on its path.
const python = process.env.BENCH_PYTHON ?? execFileSync("bash", [here("../scripts/setup-venv.sh")], { encoding: "utf8" }).trim().split("\n").pop();
// The ResNet-50 gradient set of the design notes (shared/ beside the checkout), when there.
const resnet = process.env.BENCH_RESNET50 ?? here("../../../../shared/workloads/resnet50.json");

// Idle OpenMP threads that spin keep the cores from the bridges (and Gloo's threads) that must
// answer right after backward; every measure runs with them parked.
const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" };

function job(cmd) {
  const out = execFileSync(process.execPath, [cli, "run", "-np", np, ...cmd], { encoding: "utf8", env, stdio: ["ignore", "pipe", "inherit"] });
  const line = out.split("\n").find((l) => l.includes("RESULT "));
  if (!line) throw new Error(`no RESULT line from ${cmd.join(" ")}:\n${out}`);
  return JSON.parse(line.slice(line.indexOf("RESULT ") + 7));
}

const node = job(["node", here("node_bench.mjs")]);
const py = job([python, here("python_bench.py"), ...(existsSync(resnet) ? [resnet] : [])]);
const us = (s) => `${(s * 1e6).toFixed(0)} µs`;
const ms = (s) => `${(s * 1e3).toFixed(2)} ms`;
const gbs = (s) => `${((64 << 20) / s / 1e9).toFixed(2)} GB/s`;
const ratio = (a, b) => (a / b).toFixed(2);
const rows = [
  ["1 KiB allreduce, round trip", us(py.latency_1k_s), "Node directly", us(node.latency_1k_s), ratio(py.latency_1k_s, node.latency_1k_s)],
  ["64 MiB allreduce (algbw)", gbs(py.allreduce_64m_s), "Node directly", gbs(node.allreduce_64m_s), ratio(py.allreduce_64m_s, node.allreduce_64m_s)],
];
for (const [model, what] of [["digits", "digits model step"], ["resnet50", "ResNet-50 gradient set step"]]) {
  if (py[`${model}_opt_s`] === undefined) continue;
  const gloo = py[`${model}_ddp_gloo_s`];
  rows.push([`${what}, uc.DistributedOptimizer`, ms(py[`${model}_opt_s`]), "DDP on Gloo", ms(gloo), ratio(py[`${model}_opt_s`], gloo)]);
  rows.push([`${what}, DDP on backend "unicc"`, ms(py[`${model}_ddp_unicc_s`]), "DDP on Gloo", ms(gloo), ratio(py[`${model}_ddp_unicc_s`], gloo)]);
}
console.log(`\n${np} ranks on one host (medians; ratio = time through the bridge / time of the peer, lower is better)\n`);
console.log("| measure | through the bridge | peer | peer's | time ratio |");
console.log("| --- | --- | --- | --- | --- |");
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
