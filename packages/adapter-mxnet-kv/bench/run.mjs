// KVStore benchmark of @unicc/mxnet, in one run (see USAGE): the ResNet-50 gradient set pushed
// and pulled per step (kv_bench.py) through dist_sync_unicc (fp32, and fp16 between hosts) and
// through MXNet's own dist_sync on ps-lite (a scheduler, one server per host and the workers,
// started with the DMLC_* variables as MXNet's launcher does), on this host or on emulated hosts
// (tests/cluster/); then, on this host, examples/mxnet-digits' images/s and exchange share at 1, 2
// and 4 ranks. Prints a table of medians and ratios and writes every figure as JSON.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { newCommand, parseCommand, parseOrExit, wholeNumber } from "@unicc/core/cli-options";

const USAGE = `usage: npm run bench -w @unicc/mxnet -- [options]    (= node bench/run.mjs [options])

  -np N                 N ranks on this host (default 4)
  --emulated-hosts H    instead: H emulated hosts (tests/cluster/: 2000 Mbit/s links, 600 Mbit/s
                        per TCP flow; needs root, ip, tc), 2 ranks on each
  --steps N             timed steps per store (default 8)
  --sharded             instead: the sharded classifier (1,000,000 classes x 128) against plain
                        data parallelism (sharded_bench.py), step time and peak RSS per rank
  --out DIR             where mxnet-bench*.json goes (default bench-results)
  -h, --help            this text
`;
const JOB_LIMIT_S = 600;
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const coreDist = here("../../core-native/dist/");
const cli = join(coreDist, "cli.js");
const fail = (msg) => {
  process.stderr.write(`mxnet bench: ${msg}\n`);
  process.exit(1);
};

const o = { np: 4, hosts: 0, steps: 8, out: "bench-results", sharded: false };
const parsed = parseOrExit("mxnet bench", USAGE, () => {
  const cmd = newCommand("mxnet bench")
    .option("-n, --np <N>", "", (v) => void (o.np = wholeNumber("-np", v, 1)))
    .option("--emulated-hosts <H>", "", (v) => void (o.hosts = wholeNumber("--emulated-hosts", v, 1)))
    .option("--steps <N>", "", (v) => void (o.steps = wholeNumber("--steps", v, 1)))
    .option("--sharded")
    .option("--out <DIR>", "", (v) => void (o.out = v));
  const { opts } = parseCommand(cmd, process.argv.slice(2), { "-np": "-n" });
  o.sharded = opts.sharded === true;
  return opts.help ? "help" : o;
});
if (typeof parsed === "number") process.exit(parsed);

const python = process.env.BENCH_PYTHON ?? execFileSync("bash", [here("../scripts/setup-venv.sh")], { encoding: "utf8" }).trim().split("\n").pop();
const workload = here("../../bench/workloads/resnet50.json");
const env = { ...process.env, OMP_NUM_THREADS: "1", OMP_WAIT_POLICY: "PASSIVE" };

/** Runs argv to completion (stopped after JOB_LIMIT_S); resolves with its stdout. */
function job(cmd, args, jobEnv) {
  return new Promise((done, reject) => {
    const child = spawn(cmd, args, { env: jobEnv, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    const limit = setTimeout(() => child.kill("SIGKILL"), JOB_LIMIT_S * 1000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(limit);
      if (code === 0) done(stdout);
      else reject(new Error(`${[cmd, ...args].map((a) => a.split("/").pop()).join(" ")}: exit ${code ?? signal}\n${stdout}`));
    });
  });
}

const resultOf = (stdout, what) => {
  const line = stdout.split("\n").find((l) => l.includes("RESULT "));
  if (!line) throw new Error(`no RESULT line from ${what}:\n${stdout}`);
  return JSON.parse(line.slice(line.indexOf("RESULT ") + 7));
};

/** Starts a ps-lite scheduler or server (`import mxnet` with DMLC_ROLE set serves until the workers finish). */
function psNode(role, prefix, nodeEnv) {
  const argv = [...prefix, python, "-c", "import mxnet"];
  return spawn(argv[0], argv.slice(1), { env: { ...nodeEnv, DMLC_ROLE: role }, stdio: ["ignore", "ignore", "inherit"] });
}

async function kvRun(launch, store, compression, dmlc) {
  const args = [cli, "run", ...launch, "--", python, here("kv_bench.py"), "--store", store, "--compression", compression,
    "--workload", workload, "--steps", String(o.steps), "--warmup", String(o.hosts ? 20 : 3)];
  if (!dmlc) return resultOf(await job(process.execPath, args, env), store);
  const nodes = [psNode("scheduler", dmlc.scheduler, { ...env, ...dmlc.env }), ...dmlc.servers.map((p) => psNode("server", p, { ...env, ...dmlc.env, ...dmlc.nodeEnv }))];
  try {
    return resultOf(await job(process.execPath, args, { ...env, ...dmlc.env, ...dmlc.nodeEnv, DMLC_ROLE: "worker" }), store);
  } finally {
    for (const n of nodes) n.kill("SIGKILL");
  }
}

async function stores(launch, ranks, dmlcFor) {
  const rows = {};
  if (o.sharded) {
    for (const mode of ["sharded", "data"])
      rows[mode] = resultOf(await job(process.execPath, [cli, "run", ...launch, "--", python, here("sharded_bench.py"), "--mode", mode], env), mode);
    return rows;
  }
  rows.unicc = await kvRun(launch, "dist_sync_unicc", "none");
  if (o.hosts) rows.unicc_fp16 = await kvRun(launch, "dist_sync_unicc", "fp16");
  rows.dist_sync = await kvRun(launch, "dist_sync", "none", dmlcFor(ranks));
  return rows;
}

const port = () => 20000 + Math.floor(Math.random() * 20000);
let where;
let kv;
const started = Date.now();
if (!o.hosts) {
  where = `${o.np} ranks on one host (${cpus().length} cpus)`;
  kv = await stores(["-np", String(o.np)], o.np, (ranks) => ({
    scheduler: [], servers: [[]],
    env: { DMLC_PS_ROOT_URI: "127.0.0.1", DMLC_PS_ROOT_PORT: String(port()), DMLC_NUM_SERVER: "1", DMLC_NUM_WORKER: String(ranks) },
    nodeEnv: {},
  }));
} else {
  const cluster = await import(new URL("../../bench/dist/cluster.js", import.meta.url).href);
  const why = cluster.netnsUnavailable();
  if (why) fail(`--emulated-hosts needs network namespaces (tests/cluster/): ${why}`);
  const net = await cluster.up({ hosts: o.hosts, tag: `mxb${process.pid % 100000}` });
  try {
    where = `${o.hosts} emulated hosts x 2 ranks (tests/cluster/: ${net.rateMbit} Mbit/s links, ${net.perFlowMbit} Mbit/s per TCP flow; ${cpus().length} cpus in all)`;
    const launch = ["-H", net.hosts.map((h) => `${h.name}:2`).join(","), "--launch-agent", "ip netns exec {host}", "--rendezvous-addr", net.rootAddr];
    kv = await stores(launch, 2 * o.hosts, (ranks) => ({
      scheduler: [], // in the root namespace, which every host reaches at rootAddr
      servers: net.hosts.map((h) => ["ip", "netns", "exec", h.name]),
      env: { DMLC_PS_ROOT_URI: net.rootAddr, DMLC_PS_ROOT_PORT: String(port()), DMLC_NUM_SERVER: String(o.hosts), DMLC_NUM_WORKER: String(ranks) },
      nodeEnv: { DMLC_INTERFACE: "eth0" },
    }));
  } finally {
    await net.down();
  }
}

const example = {};
if (!o.hosts && !o.sharded) {
  for (const np of [1, 2, 4]) {
    const out = await job(process.execPath, [cli, "run", "-np", String(np), "--", python, here("../../../examples/mxnet-digits/train.py"), "--epochs", "2"], env);
    const m = /epoch 2: [\d.]+ s, (\d+) images\/s, exchange (\d+)% of the step/.exec(out);
    if (!m) throw new Error(`no epoch line from the example on ${np} ranks:\n${out}`);
    example[np] = { images_per_s: Number(m[1]), exchange_share: Number(m[2]) / 100 };
  }
}

const ms = (s) => `${(s * 1e3).toFixed(1)} ms`;
const bytes = 25_557_032 * 4;
const rate = (s) => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
let table;
if (o.sharded) {
  const { sharded: sh, data: dp } = kv;
  const gb = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;
  table = `Last layer of a ${sh.classes.toLocaleString("en")}-class classifier (x ${sh.dim}, fp32), batch ${sh.batch} per rank, ${where}; medians of 3 steps\n\n`;
  table += "| way | weights per rank | step | peak RSS per rank (largest) |\n| --- | --- | --- | --- |\n";
  for (const [name, r] of [["ShardedSoftmaxClassifier", sh], ["data parallel (full matrix, allreduced)", dp]])
    table += `| ${name} | ${(r.weights_per_rank * 4 / 1e6).toFixed(0)} MB | ${ms(r.median_s)} | ${gb(r.peak_rss_bytes)} |\n`;
  table += `\nstep time data parallel / sharded: ${(dp.median_s / sh.median_s).toFixed(2)}x; peak RSS: ${(dp.peak_rss_bytes / sh.peak_rss_bytes).toFixed(2)}x\n`;
} else {
  table = `ResNet-50 gradient set (161 tensors, 102 MB fp32) pushed and pulled per step, ${where}; medians of ${o.steps} steps\n\n`;
  table += "| store | step | gradient bytes per second | dist_sync's step / this |\n| --- | --- | --- | --- |\n";
  for (const [name, r] of Object.entries(kv))
    table += `| ${name === "dist_sync" ? "dist_sync (ps-lite)" : name === "unicc" ? "dist_sync_unicc fp32" : "dist_sync_unicc fp16"} | ${ms(r.median_s)} | ${rate(r.median_s)} | ${(kv.dist_sync.median_s / r.median_s).toFixed(2)}x |\n`;
}
if (Object.keys(example).length) {
  table += "\nexamples/mxnet-digits, epoch 2 (gluon.Trainer on dist_sync_unicc)\n\n| ranks | images/s | exchange share of the step |\n| --- | --- | --- |\n";
  for (const [np, e] of Object.entries(example)) table += `| ${np} | ${e.images_per_s} | ${(100 * e.exchange_share).toFixed(0)}% |\n`;
}
process.stdout.write("\n" + table);
const outDir = resolve(process.env.INIT_CWD ?? process.cwd(), o.out);
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `mxnet-bench${o.sharded ? "-sharded" : ""}${o.hosts ? "-emulated" : ""}.json`);
writeFileSync(file, JSON.stringify({ where, kv, example, seconds: (Date.now() - started) / 1000 }, null, 2) + "\n");
process.stdout.write(`\nwrote ${file}\n`);
