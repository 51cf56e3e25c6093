// `unicc-bench`: allreduce latency and bus bandwidth of unicc beside PyTorch's Gloo backend and
// Open MPI, all measured in one invocation on this host with one plan (plan.ts), with the
// unicc/peer busbw ratio for every size.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { constants, cpus } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";

import { newCommand, parseCommand, parseOrExit, UsageError, wholeNumber } from "@unicc/core/cli-options";

import { runJob } from "./job.js";
import { BENCH_DIR, MPI_BIN, mpiMissing, pythonHas, pythonHint, PYTHON, torchMissing } from "./peers.js";
import { encodePlan, formatSize, makePlan, parseSizes, type Step } from "./plan.js";

const WORKER = fileURLToPath(new URL("./worker.js", import.meta.url));
/**
 * unicc and Gloo fail a collective that makes no progress for a while; Open MPI would wait
 * forever, so mpirun is stopped after this long without a line from rank 0 (a progress line
 * comes at least every second or so while it works).
 */
const MPI_SILENCE_LIMIT_S = 120;
const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

const PEERS = ["gloo", "mpi"] as const;
type Peer = (typeof PEERS)[number];
/** What one program measures: the unicc worker times its promise and its blocking API. */
type Program = "unicc" | Peer;
type Impl = "unicc" | "unicc-sync" | Peer;

/** One line a program prints: rank 0's median over the timed runs of one size. */
export interface BenchRow {
  impl: Impl;
  ranks: number;
  bytes: number;
  iters: number;
  median_s: number;
  busbw_GBps: number;
}

interface Options {
  ranks: number[];
  sizes: number[];
  peers: Peer[];
  unicc: boolean;
  out: string;
  iters?: number;
  gapUs: number;
}

const USAGE = `usage: unicc-bench [allreduce] [options]

Allreduce (float32 sum) on this host: median latency and bus bandwidth of unicc, PyTorch's Gloo
backend and Open MPI, measured in one run by the same method, with unicc/peer busbw ratios.

  --ranks N,...       rank counts (default 2,4)
  --sizes SPEC        "A-B": A, 4A, 16A, ... up to B; or a list, e.g. 1K,1M,256M (default 1K-256M)
  --peers P,...|none  gloo, mpi, or none (default gloo,mpi)
  --no-unicc          measure the peers only
  --iters K           timed runs per size (default 200 up to 4M, fewer above, 5 at 256M)
  --gap US            busy compute of US microseconds between the barrier and each timed call, as
                      a training step computes before it hands over a gradient (default 0)
  --out DIR           directory for bench.json and bench.png (default bench-results)
  -h, --help          this text

Gloo needs a Python with torch (packages/bench/.venv, or UNICC_BENCH_PYTHON), the plot matplotlib
there, and mpi Open MPI's mpirun and mpicc; a missing peer is named with how to install it.

unicc-bench engine [options]: a training step's gradient exchange on emulated hosts against
PyTorch DDP over Gloo, with an ablation and an overlap replay (unicc-bench engine --help).
`;


function parseArgs(argv: string[]): Options | "help" {
  const o: Options = { ranks: [2, 4], sizes: parseSizes("1K-256M"), peers: [...PEERS], unicc: true, out: "bench-results", gapUs: 0 };
  const cmd = newCommand("unicc-bench")
    .option("--ranks <N,...>", "", (v) => {
      o.ranks = v.split(",").map((s) => {
        if (!/^\d+$/.test(s.trim()) || Number(s) < 2) throw new UsageError(`--ranks needs whole numbers of at least 2, got '${s}'`);
        return Number(s);
      });
    })
    .option("--sizes <SPEC>", "", (v) => {
      try {
        o.sizes = parseSizes(v);
      } catch (e) {
        throw new UsageError(`--sizes: ${(e as Error).message}`);
      }
    })
    .option("--peers <P,...>", "", (v) => {
      o.peers = v.trim() === "none" ? [] : (v.trim().split(",").map((p) => p.trim()) as Peer[]);
      const bad = o.peers.find((p) => !PEERS.includes(p));
      if (bad !== undefined) throw new UsageError(`unknown peer '${bad}' (gloo, mpi or none)`);
    })
    .option("--no-unicc")
    .option("--iters <K>", "", (v) => void (o.iters = wholeNumber("--iters", v, 1)))
    .option("--gap <US>", "", (v) => void (o.gapUs = wholeNumber("--gap", v, 0)))
    .option("--out <DIR>", "", (v) => void (o.out = v));
  const { opts } = parseCommand(cmd, argv);
  if (opts.help) return "help";
  o.unicc = opts.unicc !== false;
  if (!o.unicc && !o.peers.length) throw new UsageError("nothing to measure (--no-unicc with --peers none)");
  return o;
}

export function formatTime(s: number): string {
  const [v, unit] = s < 1e-3 ? [s * 1e6, "us"] : s < 1 ? [s * 1e3, "ms"] : [s, "s"];
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${unit}`;
}

/** GB/s with two decimals, or two significant digits below 0.1 (Gloo's small sizes). */
function formatBw(gbps: number): string {
  return gbps >= 0.1 || gbps === 0 ? gbps.toFixed(2) : gbps.toPrecision(2);
}

/** A stream that hands each whole line written to it to `onLine`. */
export function lineSink(onLine: (line: string) => void): Writable {
  let pending = "";
  return new Writable({
    write(chunk, _enc, done) {
      const parts = (pending + String(chunk)).split("\n");
      pending = parts.pop()!;
      parts.forEach(onLine);
      done();
    },
    final(done) {
      if (pending) onLine(pending);
      done();
    },
  });
}

/**
 * Starts mpirun; resolves with its exit code. Stops it when rank 0 stays silent too long, or when
 * this process is asked to stop (a SIGTERM sent to this process alone would not reach it).
 */
function runMpi(ranks: number, plan: Step[], stdout: Writable, stderr: Writable, heard: { at: number }): Promise<number> {
  // Default transports (shared memory on one host); more ranks than cores is the point at 4 ranks here.
  const args = ["--oversubscribe", "-np", String(ranks), MPI_BIN, encodePlan(plan)];
  if (process.getuid?.() === 0) args.unshift("--allow-run-as-root");
  const child = spawn("mpirun", args, { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.pipe(stdout, { end: false });
  child.stderr.pipe(stderr, { end: false });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 5000).unref();
  };
  const watchdog = setInterval(() => {
    if (stopping || Date.now() - heard.at < MPI_SILENCE_LIMIT_S * 1000) return;
    stderr.write(`no output for ${MPI_SILENCE_LIMIT_S} s: stopping mpirun\n`);
    stop();
  }, 1000);
  for (const sig of STOP_SIGNALS) process.on(sig, stop);
  return new Promise((resolve) => {
    const done = (code: number) => {
      clearInterval(watchdog);
      for (const sig of STOP_SIGNALS) process.off(sig, stop);
      resolve(code);
    };
    child.on("error", (e) => {
      stderr.write(`cannot start mpirun: ${e.message}\n`);
      done(127);
    });
    child.on("close", (code, signal) => done(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
}

/** Runs one program at `ranks` ranks over the plan: its rows, and its exit code. */
async function runProgram(program: Program, ranks: number, plan: Step[]): Promise<{ rows: BenchRow[]; exitCode: number }> {
  const rows: BenchRow[] = [];
  const heard = { at: Date.now() };
  // The launcher prefixes each line with "[rank] "; mpirun passes rank 0's lines as they are.
  const unprefix = (line: string) => line.replace(/^\[\d+\] /, "");
  const stdout = lineSink((line) => {
    heard.at = Date.now();
    let row: BenchRow | undefined;
    try {
      row = JSON.parse(unprefix(line)) as BenchRow;
    } catch {
      // not a result: pass it on below
    }
    if (row?.median_s === undefined) {
      process.stdout.write(`[bench ${program}] ${line}\n`);
      return;
    }
    rows.push(row);
    process.stdout.write(
      `[bench] ${row.impl} n=${row.ranks} ${formatSize(row.bytes)}: ${row.iters}/${row.iters}` +
        `  ${formatTime(row.median_s)}  ${formatBw(row.busbw_GBps)} GB/s\n`,
    );
  });
  const stderr = lineSink((line) => {
    heard.at = Date.now();
    const m = /^progress (\S+) (\d+) (\d+\/\d+)$/.exec(unprefix(line));
    if (m) process.stdout.write(`[bench] ${m[1]} n=${ranks} ${formatSize(Number(m[2]))}: ${m[3]}\n`);
    else process.stderr.write(`[bench ${program}] ${line}\n`);
  });

  let exitCode: number;
  if (program === "mpi") {
    exitCode = await runMpi(ranks, plan, stdout, stderr, heard);
  } else {
    const command =
      program === "unicc" ? [process.execPath, WORKER, encodePlan(plan)] : [PYTHON, join(BENCH_DIR, "peers/gloo_allreduce.py"), encodePlan(plan)];
    exitCode = await runJob(["-np", String(ranks)], command, { stdout, stderr });
  }
  await Promise.all([stdout, stderr].map((s) => new Promise((resolve) => s.end(resolve))));
  return { rows, exitCode };
}

/** Whether every chosen peer is here; if not, says what is missing and how to install it. */
function peersPresent(o: Options): boolean {
  const missing = o.peers.flatMap((p) => {
    const why = p === "gloo" ? torchMissing() : mpiMissing();
    return why ? [`${p}: ${why}`] : [];
  });
  for (const m of missing) process.stderr.write(`unicc-bench: ${m}\n`);
  if (missing.length) process.stderr.write(`unicc-bench: or leave ${missing.length > 1 ? "those peers" : "that peer"} out with --peers\n`);
  return !missing.length;
}

interface Ratio {
  ranks: number;
  bytes: number;
  peer: Peer;
  /** unicc busbw / peer busbw (promise API). */
  busbw_ratio: number;
}

function ratios(rows: BenchRow[], o: Options): Ratio[] {
  if (!o.unicc) return [];
  const find = (impl: Impl, ranks: number, bytes: number) => rows.find((r) => r.impl === impl && r.ranks === ranks && r.bytes === bytes);
  return o.ranks.flatMap((ranks) =>
    o.sizes.flatMap((bytes) =>
      o.peers.flatMap((peer) => {
        const [u, p] = [find("unicc", ranks, bytes), find(peer, ranks, bytes)];
        return u && p ? [{ ranks, bytes, peer, busbw_ratio: u.busbw_GBps / p.busbw_GBps }] : [];
      }),
    ),
  );
}

/** One table per rank count: size, then latency and busbw of each implementation, then the ratios. */
function table(rows: BenchRow[], ratioRows: Ratio[], o: Options, ranks: number): string {
  const impls: Impl[] = [...(o.unicc ? (["unicc", "unicc-sync"] as const) : []), ...o.peers];
  const ratioPeers = o.unicc ? o.peers : [];
  const head = ["size", ...impls.flatMap((i) => [`${i} lat`, `${i} busbw`]), ...ratioPeers.map((p) => `unicc/${p}`)];
  const body = o.sizes.map((bytes) => {
    const cells = impls.flatMap((impl) => {
      const r = rows.find((x) => x.impl === impl && x.ranks === ranks && x.bytes === bytes);
      return r ? [formatTime(r.median_s), formatBw(r.busbw_GBps)] : ["-", "-"];
    });
    const ratio = (p: Peer) => ratioRows.find((x) => x.ranks === ranks && x.bytes === bytes && x.peer === p);
    return [formatSize(bytes), ...cells, ...ratioPeers.map((p) => ratio(p)?.busbw_ratio.toFixed(2).concat("x") ?? "-")];
  });
  return alignColumns([head, ...body]);
}

/** Rows of cells as text, each column right-aligned to its widest cell. */
export function alignColumns(lines: string[][]): string {
  const widths = lines[0].map((_, c) => Math.max(...lines.map((l) => l[c].length)));
  return lines.map((l) => l.map((cell, c) => cell.padStart(widths[c])).join("  ").trimEnd()).join("\n");
}

export async function runAllreduceBench(argv: string[]): Promise<number> {
  const o = parseOrExit("unicc-bench", USAGE, () => parseArgs(argv));
  if (typeof o === "number") return o;
  const started = Date.now();
  if (!peersPresent(o)) return 1;

  // Ctrl-C or SIGTERM stops the program running now (the launcher and runMpi see it too), then the bench.
  let stopped: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    stopped = sig;
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  const plan = makePlan(o.sizes, o.iters, o.gapUs);
  const programs: Program[] = [...(o.unicc ? (["unicc"] as const) : []), ...o.peers];
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  try {
    for (const ranks of o.ranks) {
      for (const program of programs) {
        if (stopped) break;
        process.stdout.write(`[bench] ${program} n=${ranks}: ${plan.length} sizes, ${formatSize(o.sizes[0])} to ${formatSize(o.sizes.at(-1)!)}\n`);
        const res = await runProgram(program, ranks, plan).catch((e: Error) => {
          process.stderr.write(`[bench ${program}] ${e.message}\n`);
          return { rows: [], exitCode: 1 };
        });
        rows.push(...res.rows);
        const expected = plan.length * (program === "unicc" ? 2 : 1);
        if (res.exitCode !== 0 || res.rows.length !== expected)
          failures.push(`${program} at ${ranks} ranks: exit code ${res.exitCode}, ${res.rows.length} of ${expected} results`);
      }
    }
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  }
  if (stopped) {
    process.stderr.write(`unicc-bench: stopped by ${stopped}\n`);
    return 128 + constants.signals[stopped];
  }

  const ratioRows = ratios(rows, o);
  const cores = cpus().length;
  process.stdout.write(
    `\nallreduce, float32 sum, on this host (${cores} cpus)${o.gapUs ? `, each call after ${o.gapUs} us of compute` : ""}: lat = median time of one allreduce; ` +
      `busbw = bytes / lat x 2(n-1)/n in GB/s; unicc/peer = ratio of busbw (unicc = promise API, unicc-sync = blocking)\n`,
  );
  for (const ranks of o.ranks) process.stdout.write(`\n${ranks} ranks\n${table(rows, ratioRows, o, ranks)}\n`);

  mkdirSync(o.out, { recursive: true });
  const jsonPath = join(o.out, "bench.json");
  const pngPath = join(o.out, "bench.png");
  const report = {
    date: new Date().toISOString(),
    host: { cpus: cores, cpu_model: cpus()[0]?.model, node: process.version },
    method:
      "per size and rank count: warm-up runs, then iters x (restore the random input, barrier, gapUs of busy compute, t0, allreduce float32 sum in place, t1) " +
      "on rank 0; median_s = median of those times; busbw_GBps = bytes / median_s x 2(n-1)/n / 1e9",
    plan,
    rows,
    ratios: ratioRows,
    failures,
  };
  writeFileSync(jsonPath, `${JSON.stringify(report, null, 1)}\n`);
  process.stdout.write(`\n[bench] wrote ${jsonPath}${plot("plot.py", jsonPath, pngPath)}\n`);
  process.stdout.write(`[bench] done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  for (const f of failures) process.stderr.write(`unicc-bench: ${f}\n`);
  return failures.length ? 1 : 0;
}

/** Draws a report with plot.py or plot_engine.py: " and PNG", or why there is no plot. */
export function plot(script: string, jsonPath: string, pngPath: string): string {
  if (!pythonHas(["matplotlib"])) return ` (no plot: ${PYTHON} lacks matplotlib; to plot:\n${pythonHint()})`;
  const r = spawnSync(PYTHON, [join(BENCH_DIR, script), jsonPath, pngPath], { stdio: "inherit" });
  return r.status === 0 ? ` and ${pngPath}` : ` (no plot: ${script} failed, see above)`;
}
