// Bridge cost and training-step benchmark of @unicc/torch, in one run (see USAGE). Runs
// node_bench.mjs, the engine's own bench worker (the ResNet-50 gradient set exchanged by named
// allreduces from Node) and python_bench.py as `unicc run` jobs, on this host or on emulated hosts
// (tests/cluster/), prints a table of medians and ratios and writes it with every figure as JSON.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { constants, cpus } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { newCommand, parseCommand, parseOrExit, wholeNumber } from "@unicc/core/cli-options";

const USAGE = `usage: npm run bench -w @unicc/torch -- [options]    (= node bench/run.mjs [options])

  -np N                 N ranks on this host (default 2)
  --emulated-hosts H    instead: H emulated hosts (tests/cluster/: network namespaces behind a
                        switch, 2000 Mbit/s links, 600 Mbit/s per TCP flow; needs root, ip, tc)
  --ranks-per-host R    ranks on each emulated host (default 2)
  --rounds N            run the three jobs N times in turn and report each figure's median over
                        the rounds (default 1): on a shared machine the load moves between jobs,
                        and alternating rounds keep it from favouring one side of a ratio
  --out DIR             where torch-bench.json / torch-bench-emulated.json go (default
                        bench-results, under the directory npm was started from)
  -h, --help            this text
`;
/** A job that has not ended after this long is stopped (its ranks get SIGTERM, then SIGKILL). */
const JOB_LIMIT_S = 600;
/** How long the launcher gets to stop its ranks after SIGTERM before it is killed itself. */
const LAUNCHER_GRACE_S = 15;
/** Untimed steps per model: on emulated hosts enough for the engine's tuner to settle (it tries
 * 1-4 streams, then fusion sizes, each over at least 256 MB: about 15 ResNet-50 steps). */
const WARMUP = { local: 3, emulated: 20 };
const RESNET_STEPS = 8; // python_bench.py's timed ResNet-50 steps, matched by the engine worker
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"];

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const coreDist = here("../../core-native/dist/");
const cli = join(coreDist, "cli.js");

function fail(msg, code = 1) {
  process.stderr.write(`torch bench: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const o = { np: 2, hosts: 0, ranksPerHost: 2, rounds: 1, out: "bench-results" };
  const cmd = newCommand("torch bench")
    .option("-n, --np <N>", "", (v) => void (o.np = wholeNumber("-np", v, 2)))
    .option("--emulated-hosts <H>", "", (v) => void (o.hosts = wholeNumber("--emulated-hosts", v, 2)))
    .option("--ranks-per-host <R>", "", (v) => void (o.ranksPerHost = wholeNumber("--ranks-per-host", v, 1)))
    .option("--rounds <N>", "", (v) => void (o.rounds = wholeNumber("--rounds", v, 1)))
    .option("--out <DIR>", "", (v) => void (o.out = v));
  return parseCommand(cmd, argv, { "-np": "-n" }).opts.help ? "help" : o;
}

const o = parseOrExit("torch bench", USAGE, () => parseArgs(process.argv.slice(2)));
if (typeof o === "number") process.exit(o);
if (!existsSync(cli)) fail(`${cli} is missing: build first (npx turbo run build)`);
const cluster = o.hosts ? await import(new URL("../../bench/dist/cluster.js", import.meta.url).href) : undefined;
const why = cluster?.netnsUnavailable();
if (why) fail(`--emulated-hosts needs network namespaces with tc-shaped links (tests/cluster/), which this machine cannot make: ${why}`);
// BENCH_PYTHON: another interpreter that has torch and the unicc packages on its path.
const python = process.env.BENCH_PYTHON ?? execFileSync("bash", [here("../scripts/setup-venv.sh")], { encoding: "utf8" }).trim().split("\n").pop();
const resnet = process.env.BENCH_RESNET50 ?? here("../../bench/workloads/resnet50.json");

// Ctrl-C / SIGTERM: stop the job running now (the launcher stops its ranks), skip the rest, and
// take the emulated network down before exiting.
let stopped;
let running;
for (const sig of STOP_SIGNALS)
  process.on(sig, () => {
    stopped ??= sig;
    running?.kill("SIGTERM");
  });

/** Runs one `unicc run` job; resolves with its stdout and the engine tuner's choices it reported. */
function job(launchArgs, cmd, env) {
  return new Promise((done, reject) => {
    const child = spawn(process.execPath, [cli, "run", ...launchArgs, "--", ...cmd], { env, stdio: ["ignore", "pipe", "pipe"] });
    running = child;
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      process.stderr.write(d);
      stderr += d;
    });
    let timedOut = false;
    const limit = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), LAUNCHER_GRACE_S * 1000).unref();
    }, JOB_LIMIT_S * 1000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(limit);
      running = undefined;
      if (code === 0) return done({ stdout, tuner: [...stderr.matchAll(/unicc: tuner chose (.*)$/gm)].map((m) => m[1]) });
      const why = timedOut ? `stopped after ${JOB_LIMIT_S} s` : stopped ? `stopped by ${stopped}` : `exit ${code ?? signal}`;
      reject(new Error(`${cmd.map((a) => a.split("/").pop()).join(" ")}: ${why} (its output is above)`));
    });
  });
}

/** The JSON on rank 0's line of the job's stdout that holds `marker`, from `skip` characters after it starts. */
function resultOf(stdout, marker, what, skip = marker.length) {
  const line = stdout.split("\n").find((l) => l.includes(marker));
  if (!line) throw new Error(`no result line from ${what}:\n${stdout}`);
  return JSON.parse(line.slice(line.indexOf(marker) + skip));
}

async function measureOnce(launchArgs, env, extraPy) {
  const warmup = o.hosts ? WARMUP.emulated : WARMUP.local;
  const node = resultOf((await job(launchArgs, [process.execPath, here("node_bench.mjs")], env)).stdout, "RESULT ", "node_bench.mjs");
  if (stopped) return undefined;
  const engineCfg = { workload: resnet, mode: "exchange", compression: "none", warmup, steps: RESNET_STEPS };
  const eng = await job(launchArgs, [process.execPath, here("../../bench/dist/engine-worker.js"), JSON.stringify(engineCfg)], env);
  const engine = resultOf(eng.stdout, '{"result":', "the engine worker", 0).result;
  if (stopped) return undefined;
  const pyJob = await job(launchArgs, [python, here("python_bench.py"), "--workload", resnet, "--warmup", String(warmup), ...extraPy], env);
  const py = resultOf(pyJob.stdout, "RESULT ", "python_bench.py");
  return { node, engine, py, warmup, tuner: { engine_worker: eng.tuner, bridge: pyJob.tuner } };
}

const medianOf = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** Each figure of `objs` (objects of the same numeric keys) as its median over them. */
const medians = (objs) => Object.fromEntries(Object.keys(objs[0]).map((k) => [k, medianOf(objs.map((x) => x[k]))]));

/** o.rounds rounds of the three jobs; each figure the median of its rounds (every round kept in `rounds`). */
async function measure(launchArgs, env, extraPy) {
  const rounds = [];
  for (let r = 0; r < o.rounds && !stopped; r++) {
    if (o.rounds > 1) process.stdout.write(`[bench] round ${r + 1} of ${o.rounds}\n`);
    const one = await measureOnce(launchArgs, env, extraPy);
    if (one) rounds.push(one);
  }
  if (stopped || !rounds.length) return undefined;
  const last = rounds[rounds.length - 1];
  return {
    ...last,
    node: medians(rounds.map((x) => x.node)),
    py: medians(rounds.map((x) => x.py)),
    engine: { ...last.engine, median_s: medianOf(rounds.map((x) => x.engine.median_s)) },
    rounds: rounds.map(({ node, engine, py }) => ({ node, engine_worker_s: engine.median_s, py })),
  };
}

// Idle OpenMP threads that spin keep the cores from the bridges (and Gloo's threads) that must
// answer right after backward; every measure runs with them parked.
const env = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" };
let res;
let network;
let where;
const started = Date.now();
try {
  if (!o.hosts) {
    where = `${o.np} ranks on one host (${cpus().length} cpus)`;
    res = await measure(["-np", String(o.np)], env, []);
  } else {
    const net = await cluster.up({ hosts: o.hosts, tag: `torch${process.pid}` });
    try {
      network = { hosts: o.hosts, ranks_per_host: o.ranksPerHost, rate_mbit: net.rateMbit, per_flow_mbit: net.perFlowMbit };
      where =
        `${o.hosts} emulated hosts x ${o.ranksPerHost} ranks (tests/cluster/: ${net.rateMbit} Mbit/s links, ` +
        `${net.perFlowMbit} Mbit/s per TCP flow; ${cpus().length} cpus in all)`;
      process.stdout.write(`[bench] ${where}\n`);
      if (!stopped) {
        const launchArgs = [
          "-H", net.hosts.map((h) => `${h.name}:${o.ranksPerHost}`).join(","),
          "--launch-agent", net.launchAgent,
          "--rendezvous-addr", net.rootAddr,
        ];
        // Gloo must use the host's own interface and host 0's address for its store; the c10d
        // warning about reverse DNS is noise here.
        const netEnv = { ...env, GLOO_SOCKET_IFNAME: "eth0", TORCH_CPP_LOG_LEVEL: "ERROR" };
        res = await measure(launchArgs, netEnv, ["--master-addr", net.hosts[0].addr]);
      }
    } finally {
      await net.down();
    }
  }
} catch (e) {
  if (!stopped) fail(e.message);
}
if (stopped) fail(`stopped by ${stopped}`, 128 + constants.signals[stopped]);

const { node, engine, py } = res;
const us = (s) => `${(s * 1e6).toFixed(0)} µs`;
const ms = (s) => (s < 1 ? `${(s * 1e3).toFixed(2)} ms` : `${s.toFixed(3)} s`);
const gbs = (bytes) => (s) => `${(bytes / s / 1e9).toFixed(2)} GB/s`;
const ratio = (a, b) => (a / b).toFixed(2);
const rows = [];
// Plain tensors as they go by default (1 KiB: on the client lane where there is one; larger: by
// cross-memory attach), the 1 KiB one through the command ring (lane off), then copied into a slab
// and back (attach off); share_memory_()'d ones reduced in place through the bridge's mapping.
for (const [tail, how] of [["_s", "plain (1 KiB: client lane; larger: cross-memory attach)"], ["_ring_s", "plain, through the command ring"],
                           ["_copied_s", "plain, copied through a slab"], ["_shared_s", "shared, in place"]]) {
  for (const [key, what, fmt] of [["latency_1k", "1 KiB allreduce, round trip", us], ["allreduce_4m", "4 MiB allreduce (algbw)", gbs(4 << 20)],
                                   ["allreduce_64m", "64 MiB allreduce (algbw)", gbs(64 << 20)]]) {
    const a = py[key + tail];
    if (a === undefined) continue; // "_ring_s": 1 KiB only
    const b = node[`${key}_s`];
    rows.push([`${what}, ${how}`, fmt(a), "Node directly", fmt(b), ratio(a, b)]);
  }
}
for (const size of ["1k", "64k", "4m", "64m", "256m"]) {
  const [a, b] = [py[`dist_${size}_unicc_s`], py[`dist_${size}_gloo_s`]];
  rows.push([`dist.all_reduce of ${size.replace("k", " KiB").replace("m", " MiB")}, backend "unicc"`, a < 1e-3 ? us(a) : ms(a), "backend \"gloo\"", b < 1e-3 ? us(b) : ms(b), ratio(a, b)]);
}
// The bridge's named path against Node's: the exchange alone, then the step against what it would
// take with the same exchange from Node and no overlap at all (the step without exchange + exchange).
const nodeStep = engine.median_s + py.resnet50_local_s;
rows.push([
  "ResNet-50 gradient set, named allreduces alone (DistributedOptimizer's hooks, no backward)",
  ms(py.resnet50_exchange_s),
  "the same named allreduces from Node",
  ms(engine.median_s),
  ratio(py.resnet50_exchange_s, engine.median_s),
]);
rows.push([
  "ResNet-50 gradient set step, uc.DistributedOptimizer",
  ms(py.resnet50_opt_s),
  "the set's named allreduces from Node + the step without exchange",
  `${ms(nodeStep)} (${ms(engine.median_s)} + ${ms(py.resnet50_local_s)})`,
  ratio(py.resnet50_opt_s, nodeStep),
]);
for (const [model, what] of [["resnet50", "ResNet-50 gradient set step"], ["digits", "digits model step"]]) {
  const gloo = py[`${model}_ddp_gloo_s`];
  rows.push([`${what}, uc.DistributedOptimizer`, ms(py[`${model}_opt_s`]), "DDP on Gloo", ms(gloo), ratio(py[`${model}_opt_s`], gloo)]);
  rows.push([`${what}, DDP on backend "unicc"`, ms(py[`${model}_ddp_unicc_s`]), "DDP on Gloo", ms(gloo), ratio(py[`${model}_ddp_unicc_s`], gloo)]);
  // DDP's own work (bucket copies, its hooks) with an exchange that takes no time: no backend beats it.
  rows.push([`${what}, DDP exchanging nothing (a comm hook that returns each bucket)`, ms(py[`${model}_ddp_none_s`]), "DDP on Gloo", ms(gloo), ratio(py[`${model}_ddp_none_s`], gloo)]);
}
// No backend can take less than DDP's own work plus its allreduce's least memory traffic (every
// rank's gradients read once, the sum written into every rank's) on cores DDP already keeps busy.
if (!o.hosts && py.resnet50_bytes) {
  const least = 2 * o.np * py.resnet50_bytes;
  const floor = py.resnet50_ddp_none_s + least / py.stream_Bps;
  rows.push([
    `ResNet-50 gradient set step, the least any backend could take: DDP exchanging nothing + ${(least / 1e6).toFixed(0)} MB loaded and stored at this host's ${(py.stream_Bps / 1e9).toFixed(1)} GB/s`,
    ms(floor), "DDP on Gloo", ms(py.resnet50_ddp_gloo_s), ratio(floor, py.resnet50_ddp_gloo_s),
  ]);
}
const table = [
  "| measure | through the bridge | peer | peer's | time ratio |",
  "| --- | --- | --- | --- | --- |",
  ...rows.map((r) => `| ${r.join(" | ")} |`),
].join("\n");
const notes =
  `Steps without any exchange (plain SGD, same ranks): ResNet-50 set ${ms(py.resnet50_local_s)}, digits ${ms(py.digits_local_s)}. ` +
  `Warm-up: ${res.warmup} steps per model. ${o.rounds > 1 ? `Each figure: the median of ${o.rounds} rounds. ` : ""}Engine tuner: Node worker ${res.tuner.engine_worker.join("; ") || engine.engine}; ` +
  `bridge ${res.tuner.bridge.join("; ") || "(no choice reported)"}.`;
process.stdout.write(`\n${where} (medians; ratio = time through the bridge / time of the peer, lower is better)\n\n${table}\n\n${notes}\n`);

const outDir = resolve(process.env.INIT_CWD ?? process.cwd(), o.out);
mkdirSync(outDir, { recursive: true });
const jsonPath = join(outDir, o.hosts ? "torch-bench-emulated.json" : "torch-bench.json");
const report = {
  date: new Date().toISOString(),
  command: `node bench/run.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  host: { cpus: cpus().length, cpu_model: cpus()[0]?.model, node: process.version },
  ranks: o.hosts ? { hosts: o.hosts, per_host: o.ranksPerHost } : { hosts: 1, per_host: o.np },
  network,
  warmup: res.warmup,
  workload: resnet,
  medians_s: { python: py, node, engine_worker: engine.median_s },
  rounds: res.rounds,
  engine_worker: engine,
  tuner: res.tuner,
  table,
  notes,
};
writeFileSync(jsonPath, `${JSON.stringify(report, null, 1)}\n`);
process.stdout.write(`\n[bench] wrote ${jsonPath}; done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
