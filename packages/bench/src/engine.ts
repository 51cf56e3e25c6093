// `unicc-bench engine`: one training step's gradient exchange (a workload of named tensors,
// ResNet-50 by default) on emulated hosts (tests/cluster/), unicc's engine against PyTorch DDP
// over Gloo, in one run: fp32 and 16-bit, an ablation that turns each engine optimisation off in
// turn through its environment knob, and a replayed backward pass that shows the overlap.
import { mkdirSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import type { Compression } from "@unicc/core";
import { newCommand, parseCommand, parseOrExit, UsageError, wholeNumber } from "@unicc/core/cli-options";

import { alignColumns, formatTime, lineSink, plot } from "./allreduce.js";
import { netnsUnavailable, up, type Cluster } from "./cluster.js";
import { runJob } from "./job.js";
import { BENCH_DIR, PYTHON, torchMissing } from "./peers.js";
import { loadTrace, loadWorkload, type EngineWorkerConfig } from "./workload.js";

const WORKER = fileURLToPath(new URL("./engine-worker.js", import.meta.url));
/** Seconds a collective (unicc) may make no progress before the run fails instead of hanging. */
const RANK_TIMEOUT_S = 120;
/** Replayed backward = this many times the link-bound fp32 exchange (a backward long enough to hide the exchange behind). */
const COMPUTE_FACTOR = 5;

interface Options {
  hosts: number;
  ranksPerHost: number;
  rateMbit: number;
  perFlowMbit: number;
  warmup: number;
  steps: number;
  workload: string;
  trace: string;
  gloo: boolean;
  ablation: boolean;
  overlap: boolean;
  out: string;
}

const USAGE = `usage: unicc-bench engine [options]

One training step's gradient exchange on emulated hosts (tests/cluster/: network namespaces with
shaped links; needs root and ip/tc), unicc against PyTorch DDP over Gloo, in one run:
  exchange  every tensor of the workload handed over at once in reverse order (as backward makes
            them), named, fp32 and fp16; DDP (25 MiB buckets) fp32 and with its fp16_compress_hook
  ablation  unicc with each optimisation turned off in turn by its environment knob
  overlap   a recorded ResNet-50 backward replayed (sleeps), scaled to ${COMPUTE_FACTOR}x the link-bound
            fp32 exchange, each gradient handed over as its layer finishes: scaling efficiency

  --hosts H           emulated hosts (default 2)
  --ranks-per-host R  ranks on each (default 2)
  --rate MBIT         link rate of each host (default 2000)
  --per-flow MBIT     cap per TCP flow, 0 for none (default 600)
  --warmup N          untimed steps per run (default 3)
  --steps N           timed steps per run; the median is reported (default 5)
  --workload FILE     tensors to exchange (default packages/bench/workloads/resnet50.json)
  --trace FILE        backward trace for the overlap (default packages/bench/workloads/resnet50-backward.json)
  --no-gloo, --no-ablation, --no-overlap   skip a part
  --out DIR           directory for engine.json and engine.png (default bench-results)
  -h, --help          this text
`;


function parseArgs(argv: string[]): Options | "help" {
  const o: Options = {
    hosts: 2,
    ranksPerHost: 2,
    rateMbit: 2000,
    perFlowMbit: 600,
    warmup: 3,
    steps: 5,
    workload: join(BENCH_DIR, "workloads/resnet50.json"),
    trace: join(BENCH_DIR, "workloads/resnet50-backward.json"),
    gloo: true,
    ablation: true,
    overlap: true,
    out: "bench-results",
  };
  const cmd = newCommand("unicc-bench engine")
    .option("--hosts <H>", "", (v) => void (o.hosts = wholeNumber("--hosts", v, 1)))
    .option("--ranks-per-host <R>", "", (v) => void (o.ranksPerHost = wholeNumber("--ranks-per-host", v, 1)))
    .option("--rate <MBIT>", "", (v) => void (o.rateMbit = wholeNumber("--rate", v, 1)))
    .option("--per-flow <MBIT>", "", (v) => void (o.perFlowMbit = wholeNumber("--per-flow", v, 0)))
    .option("--warmup <N>", "", (v) => void (o.warmup = wholeNumber("--warmup", v, 1)))
    .option("--steps <N>", "", (v) => void (o.steps = wholeNumber("--steps", v, 1)))
    .option("--workload <FILE>", "", (v) => void (o.workload = v))
    .option("--trace <FILE>", "", (v) => void (o.trace = v))
    .option("--no-gloo")
    .option("--no-ablation")
    .option("--no-overlap")
    .option("--out <DIR>", "", (v) => void (o.out = v));
  const { opts } = parseCommand(cmd, argv);
  if (opts.help) return "help";
  o.gloo = opts.gloo !== false;
  o.ablation = opts.ablation !== false;
  o.overlap = opts.overlap !== false;
  if (o.hosts * o.ranksPerHost < 2) throw new UsageError("needs at least 2 ranks in all");
  return o;
}

/** One job on the cluster: a unicc configuration or a DDP mode. */
interface Run {
  id: string;
  program: "unicc" | "ddp";
  /** Extra environment (the engine's knobs, for the ablation). */
  env: Record<string, string>;
  /** unicc: the worker's config; ddp: the script's arguments. */
  config: EngineWorkerConfig | string[];
}

interface RunResult {
  id: string;
  env: Record<string, string>;
  ok: boolean;
  error?: string;
  median_s?: number;
  times_s?: number[];
  compute_only_s?: number;
  /** unicc: warm-up steps run (more than asked while the tuner measured) and what the engine settled on. */
  warmup_steps?: number;
  engine?: string;
}

/** Knobs that turn one engine optimisation off, against the run with everything on. */
const ABLATION: { what: string; id: string; env: Record<string, string> }[] = [
  { what: "fusion", id: "fusion", env: { UNICC_FUSION_BYTES: "0" } },
  { what: "multi-stream TCP", id: "multi-stream", env: { UNICC_STREAMS: "1" } },
  { what: "hierarchical", id: "hierarchical", env: { UNICC_HIERARCHICAL: "0" } },
  { what: "autotune", id: "autotune", env: { UNICC_AUTOTUNE: "0" } },
  { what: "ring balance", id: "ring-balance", env: { UNICC_HOST_SHARES: "even" } },
];

function plan(o: Options, computeS: number, masterAddr: string): Run[] {
  const common = { workload: o.workload, warmup: o.warmup, steps: o.steps };
  const unicc = (id: string, compression: Compression, env: Record<string, string> = {}): Run => ({
    id,
    program: "unicc",
    env,
    config: { ...common, mode: "exchange", compression },
  });
  const ddp = (id: string, hook: string, replay: string[] = []): Run => ({
    id,
    program: "ddp",
    env: {},
    config: ["--workload", o.workload, "--master-addr", masterAddr, "--hook", hook, "--warmup", String(o.warmup), "--steps", String(o.steps), ...replay],
  });
  const runs = [unicc("unicc-fp32", "none"), unicc("unicc-fp16", "fp16")];
  if (o.gloo) runs.push(ddp("gloo-fp32", "none"), ddp("gloo-fp16", "fp16"));
  if (o.ablation)
    for (const a of ABLATION)
      for (const c of ["none", "fp16"] as const) runs.push(unicc(`unicc-${c === "none" ? "fp32" : c}-no-${a.id}`, c, a.env));
  if (o.overlap) {
    runs.push({ id: "unicc-overlap-fp32", program: "unicc", env: {}, config: { ...common, mode: "replay", compression: "none", trace: o.trace, computeS } });
    if (o.gloo) runs.push(ddp("gloo-overlap-fp32", "none", ["--trace", o.trace, "--compute-s", String(computeS)]));
  }
  return runs;
}

async function runOne(run: Run, cluster: Cluster, o: Options): Promise<RunResult> {
  let result: Omit<RunResult, "id" | "env" | "ok"> | undefined;
  let lastError = "";
  const stdout = lineSink((line) => {
    const text = line.replace(/^\[\d+\] /, "");
    try {
      const parsed = JSON.parse(text) as { result?: RunResult };
      if (parsed.result) return void (result = parsed.result);
    } catch {
      // not the result line
    }
    process.stdout.write(`[bench ${run.id}] ${line}\n`);
  });
  const stderr = lineSink((line) => {
    const m = /^\[0\] progress (.*)$/.exec(line);
    if (m) return void process.stdout.write(`[bench] ${m[1]}\n`);
    if (/error/i.test(line)) lastError = line;
    process.stderr.write(`[bench ${run.id}] ${line}\n`);
  });
  const command =
    run.program === "unicc"
      ? [process.execPath, WORKER, JSON.stringify(run.config)]
      : [PYTHON, join(BENCH_DIR, "peers/ddp_grads.py"), ...(run.config as string[])];
  const hosts = cluster.hosts.map((h) => `${h.name}:${o.ranksPerHost}`).join(",");
  const flags = ["-H", hosts, "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr, "--timeout", String(RANK_TIMEOUT_S)];
  const exitCode = await runJob(flags, command, {
      stdout,
      stderr,
      // Gloo must use the host's own interface; the c10d warning about reverse DNS is noise here.
    env: { ...process.env, ...run.env, GLOO_SOCKET_IFNAME: "eth0", TORCH_CPP_LOG_LEVEL: "ERROR" },
  });
  await Promise.all([stdout, stderr].map((s) => new Promise((resolve) => s.end(resolve))));
  if (exitCode === 0 && result) return { id: run.id, env: run.env, ok: true, ...result };
  return { id: run.id, env: run.env, ok: false, error: `exit code ${exitCode}${result ? "" : ", no result"}${lastError ? `: ${lastError}` : ""}` };
}

const ratio = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : "-");
const time = (s?: number) => (s === undefined ? "-" : formatTime(s));

function report(results: RunResult[], o: Options, limitS: number, computeS: number): { text: string; summary: Record<string, number | undefined> } {
  const get = (id: string) => results.find((r) => r.id === id && r.ok);
  const [u32, u16, g32, g16] = ["unicc-fp32", "unicc-fp16", "gloo-fp32", "gloo-fp16"].map((id) => get(id)?.median_s);
  const summary: Record<string, number | undefined> = {
    unicc_fp32_s: u32,
    gloo_fp32_s: g32,
    gloo_over_unicc_fp32: g32 && u32 && g32 / u32,
    link_limit_fp32_s: limitS,
    unicc_fp32_over_limit: u32 && u32 / limitS,
    unicc_fp16_s: u16,
    gloo_fp16_s: g16,
    gloo_over_unicc_fp16: g16 && u16 && g16 / u16,
  };
  const parts: string[] = [];
  parts.push(
    alignColumns([
      ["", "unicc", "gloo (DDP)", "gloo/unicc", "link limit", "unicc/limit"],
      ["fp32", time(u32), time(g32), ratio(g32, u32), time(limitS), ratio(u32, limitS)],
      ["fp16", time(u16), time(g16), ratio(g16, u16), time(limitS / 2), ratio(u16, limitS / 2)],
    ]),
  );
  const ddpCompute = get("gloo-fp32")?.compute_only_s;
  if (ddpCompute !== undefined) parts.push(`(DDP's step includes its toy forward/backward: ${time(ddpCompute)} without any exchange)`);

  if (o.ablation) {
    const rows = [["turned off", "knob", "fp32 step", "slower by", "fp16 step", "slower by"]];
    rows.push(["nothing", "", time(u32), "", time(u16), ""]);
    for (const a of ABLATION) {
      const [f32, f16] = [get(`unicc-fp32-no-${a.id}`)?.median_s, get(`unicc-fp16-no-${a.id}`)?.median_s];
      rows.push([a.what, Object.entries(a.env).map(([k, v]) => `${k}=${v}`).join(" "), time(f32), ratio(f32, u32), time(f16), ratio(f16, u16)]);
    }
    rows.push(["compression", "compression: none", "", "", time(u32), ratio(u32, u16)]);
    parts.push(`ablation (unicc, step time with one optimisation off; "slower by" = that / all on)\n${alignColumns(rows)}`);
  }

  if (o.overlap) {
    const rows = [["", "compute only", "with exchange", "efficiency"]];
    for (const [who, id] of [["unicc", "unicc-overlap-fp32"], ["gloo (DDP)", "gloo-overlap-fp32"]]) {
      const r = get(id);
      if (!r && who !== "unicc") continue;
      const eff = r?.compute_only_s && r.median_s ? r.compute_only_s / r.median_s : undefined;
      summary[`${id.split("-")[0]}_scaling_efficiency`] = eff;
      rows.push([who, time(r?.compute_only_s), time(r?.median_s), eff ? `${(eff * 100).toFixed(1)}%` : "-"]);
    }
    parts.push(
      `overlap (a measured ResNet-50 backward replayed as sleeps, scaled to ${time(computeS)} = ${COMPUTE_FACTOR} x the fp32 link limit; ` +
        `fp32; each gradient handed over as its layer finishes; efficiency = compute only / with exchange; ` +
        `without overlap it cannot pass ${((COMPUTE_FACTOR / (COMPUTE_FACTOR + 1)) * 100).toFixed(1)}%)\n${alignColumns(rows)}`,
    );
  }
  return { text: parts.join("\n\n"), summary };
}

export async function runEngineBench(argv: string[]): Promise<number> {
  const o = parseOrExit("unicc-bench engine", USAGE, () => parseArgs(argv));
  if (typeof o === "number") return o;
  let tensors;
  try {
    tensors = loadWorkload(o.workload);
    if (o.overlap) loadTrace(o.trace);
  } catch (e) {
    process.stderr.write(`unicc-bench engine: ${(e as Error).message}\n`);
    return 2;
  }
  const why = netnsUnavailable();
  if (why !== null) {
    process.stderr.write(`unicc-bench engine: cannot make the emulated hosts here (network namespaces with tc-shaped links, from tests/cluster/): ${why}\n`);
    return 1;
  }
  const noTorch = o.gloo ? torchMissing() : null;
  if (noTorch) {
    process.stderr.write(`unicc-bench engine: ${noTorch}\n  or leave DDP out with --no-gloo\n`);
    return 1;
  }

  const started = Date.now();
  const bytes = tensors.reduce((s, t) => s + t.numel, 0) * 4;
  // Each host must send 2(H-1)/H of the data across its link (bytes for 2 hosts) and receive as much.
  const limitS = o.hosts > 1 ? (bytes * 8 * 2 * (o.hosts - 1)) / o.hosts / (o.rateMbit * 1e6) : 0;
  const computeS = COMPUTE_FACTOR * limitS;
  if (o.overlap && o.hosts < 2) {
    process.stderr.write("unicc-bench engine: the overlap replay is scaled to the network; it needs --hosts 2 or more (or --no-overlap)\n");
    return 2;
  }

  const cluster = await up({ hosts: o.hosts, rateMbit: o.rateMbit, perFlowMbit: o.perFlowMbit, tag: `bench${process.pid}` });
  process.stdout.write(
    `[bench] ${o.hosts} emulated hosts x ${o.ranksPerHost} ranks, ${o.rateMbit} Mbit/s links, ${o.perFlowMbit || "no"} Mbit/s per flow; ` +
      `${tensors.length} tensors, ${(bytes / 2 ** 20).toFixed(1)} MiB per step\n`,
  );
  const results: RunResult[] = [];
  let stopped: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stopped = sig;
  };
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const sig of signals) process.on(sig, onSignal);
  try {
    for (const run of plan(o, computeS, cluster.hosts[0].addr)) {
      if (stopped) break;
      const knobs = Object.entries(run.env).map(([k, v]) => `${k}=${v}`).join(" ");
      process.stdout.write(`[bench] ${run.id}${knobs ? ` (${knobs})` : ""}\n`);
      const r = await runOne(run, cluster, o);
      results.push(r);
      const settled = r.engine ? ` (engine: ${r.engine} after ${r.warmup_steps} warm-up steps)` : "";
      process.stdout.write(r.ok ? `[bench] ${run.id}: median step ${time(r.median_s)}${settled}\n` : `[bench] ${run.id} FAILED: ${r.error}\n`);
    }
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
    await cluster.down();
  }
  if (stopped) {
    process.stderr.write(`unicc-bench engine: stopped by ${stopped}\n`);
    return 128 + constants.signals[stopped];
  }

  const { text, summary } = report(results, o, limitS, computeS);
  process.stdout.write(
    `\nstep time = median over ${o.steps} steps (after ${o.warmup} warm-up) of one step's gradient exchange on rank 0; ` +
      `link limit = bytes x 8 x 2(H-1)/H / link rate\n\n${text}\n`,
  );
  mkdirSync(o.out, { recursive: true });
  const jsonPath = join(o.out, "engine.json");
  writeFileSync(
    jsonPath,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        network: { hosts: o.hosts, ranks_per_host: o.ranksPerHost, rate_mbit: o.rateMbit, per_flow_mbit: o.perFlowMbit },
        workload: { file: o.workload, tensors: tensors.length, bytes },
        warmup: o.warmup,
        steps: o.steps,
        overlap_compute_s: o.overlap ? computeS : undefined,
        summary,
        runs: results,
        table: text,
      },
      null,
      1,
    )}\n`,
  );
  const pngPath = join(o.out, "engine.png");
  process.stdout.write(`\n[bench] wrote ${jsonPath}${plot("plot_engine.py", jsonPath, pngPath)}\n`);
  process.stdout.write(`[bench] done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  const failed = results.filter((r) => !r.ok);
  for (const f of failed) process.stderr.write(`unicc-bench engine: ${f.id} failed: ${f.error}\n`);
  return failed.length ? 1 : 0;
}
