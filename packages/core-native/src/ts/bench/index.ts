// `unicc bench`: allreduce latency and bus bandwidth of unicc against PyTorch's Gloo backend and
// Open MPI, all run here in the same invocation, with the unicc/peer ratios per row.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";

import { launch } from "../launcher/index.js";
import { busbw, formatSize, parseSizes } from "./plan.js";

const BENCH_DIR = fileURLToPath(new URL("../bench/", import.meta.url));
const WORKER = fileURLToPath(new URL("./bench-worker.js", import.meta.url));
const PYTHON = `${BENCH_DIR}.venv/bin/python`;
const MPI_BIN = `${BENCH_DIR}build/mpi_allreduce`;

const USAGE = `usage: unicc bench [--ranks 2,4] [--sizes 1K-256M] [--peers gloo,mpi] [--budget S] [--out DIR]

  --ranks    rank counts to run, on this host
  --sizes    "A-B" (powers of 4 from A to B) or a list, e.g. 1K,1M,256M
  --peers    which peers to run beside unicc: gloo, mpi, or none
  --budget   seconds of repetitions per size and implementation (default 1; at least 5 runs each)
  --out      directory for bench.json and bench.png (default bench-results)
`;

export interface Row {
  impl: string;
  ranks: number;
  bytes: number;
  iters: number;
  median_s: number;
}

type Impl = "unicc" | "unicc-sync" | "gloo" | "mpi";

/** Collects the JSON lines a run prints (the launcher prefixes them with "[rank] "). */
function rowCollector(rows: Row[], label: string): Writable {
  let pending = "";
  return new Writable({
    write(chunk, _enc, done) {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const json = line.replace(/^\[\d+\] /, "");
        if (!json.startsWith("{")) continue;
        const row = JSON.parse(json) as Row;
        rows.push(row);
        const us = row.median_s * 1e6;
        process.stdout.write(
          `[bench] ${label} n=${row.ranks} ${formatSize(row.bytes).padStart(4)}: ${us < 1e4 ? `${us.toFixed(1)} us` : `${(us / 1e3).toFixed(1)} ms`}` +
            ` (${row.iters} runs), busbw ${busbw(row.bytes, row.median_s, row.ranks).toFixed(2)} GB/s\n`,
        );
      }
      done();
    },
  });
}

async function runImpl(impl: Impl, ranks: number, sizes: number[], budget: number): Promise<Row[]> {
  const rows: Row[] = [];
  const args = [sizes.join(","), String(budget)];
  const out = rowCollector(rows, impl);
  if (impl === "mpi") {
    const child = spawn("mpirun", ["--allow-run-as-root", "--oversubscribe", "-np", String(ranks), MPI_BIN, ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.stdout.pipe(out);
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    if (code !== 0) throw new Error(`mpirun exited with ${code}`);
  } else {
    const command = impl === "unicc" ? [process.execPath, WORKER, ...args] : [PYTHON, `${BENCH_DIR}peers/gloo_allreduce.py`, ...args];
    const { exitCode } = await launch(
      { command, hosts: [{ name: "localhost", slots: ranks }], launchAgent: "ssh {host}", graceMs: 2000 },
      { stdout: out, stderr: process.stderr },
    );
    if (exitCode !== 0) throw new Error(`${impl} run at ${ranks} ranks exited with ${exitCode}`);
  }
  await new Promise((r) => out.end(r));
  return rows;
}

function ensurePeers(peers: Impl[]): void {
  const missing = (peers.includes("gloo") && !existsSync(PYTHON)) || (peers.includes("mpi") && !existsSync(MPI_BIN));
  if (!missing) return;
  process.stdout.write(`[bench] installing the peers (bench/setup.sh)\n`);
  const r = spawnSync("bash", [`${BENCH_DIR}setup.sh`], { stdio: "inherit" });
  if (r.status !== 0) throw new Error("bench/setup.sh failed; see its output above");
}

function table(rows: Row[], impls: Impl[], rankList: number[], sizes: number[]): string {
  const peers = impls.filter((i) => !i.startsWith("unicc"));
  const head = ["n", "size", ...impls.map((i) => `${i} lat`), ...impls.map((i) => `${i} busbw`), ...peers.map((p) => `unicc/${p}`)];
  const lines = [head];
  for (const n of rankList) {
    for (const bytes of sizes) {
      const get = (impl: string) => rows.find((r) => r.impl === impl && r.ranks === n && r.bytes === bytes);
      const bw = (impl: string) => {
        const r = get(impl);
        return r ? busbw(r.bytes, r.median_s, r.ranks) : NaN;
      };
      const lat = (impl: string) => {
        const r = get(impl);
        if (!r) return "-";
        const us = r.median_s * 1e6;
        return us < 1e4 ? `${us.toFixed(1)}us` : `${(us / 1e3).toFixed(1)}ms`;
      };
      lines.push([
        String(n), formatSize(bytes),
        ...impls.map(lat), ...impls.map((i) => bw(i).toFixed(2)),
        ...peers.map((p) => `${(bw("unicc") / bw(p)).toFixed(2)}x`),
      ]);
    }
  }
  const widths = head.map((_, c) => Math.max(...lines.map((l) => l[c].length)));
  return lines.map((l) => l.map((cell, c) => cell.padStart(widths[c])).join("  ")).join("\n");
}

export async function runBench(argv: string[]): Promise<number> {
  let rankList = [2, 4], sizes = parseSizes("1K-256M"), budget = 1, outDir = "bench-results";
  let peers: Impl[] = ["gloo", "mpi"];
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i] ?? "";
    switch (argv[i]) {
      case "--ranks": rankList = v().split(",").map(Number); break;
      case "--sizes": sizes = parseSizes(v()); break;
      case "--peers": { const p = v(); peers = p === "none" ? [] : (p.split(",") as Impl[]); break; }
      case "--budget": budget = Number(v()); break;
      case "--out": outDir = v(); break;
      case "--help": case "-h": process.stdout.write(USAGE); return 0;
      default: process.stderr.write(`unicc bench: unknown option '${argv[i]}'\n${USAGE}`); return 2;
    }
  }
  if (rankList.some((n) => !Number.isInteger(n) || n < 2) || peers.some((p) => p !== "gloo" && p !== "mpi") || !(budget > 0)) {
    process.stderr.write(`unicc bench: bad --ranks, --peers or --budget\n${USAGE}`);
    return 2;
  }
  ensurePeers(peers);
  const impls: Impl[] = ["unicc", "unicc-sync", ...peers];
  const rows: Row[] = [];
  // The unicc worker measures both of its variants in one run.
  for (const n of rankList) for (const impl of impls.filter((i) => i !== "unicc-sync")) rows.push(...(await runImpl(impl, n, sizes, budget)));

  const text = table(rows, impls, rankList, sizes);
  process.stdout.write(`\nallreduce float32 sum, ${cpus().length} cores; lat = median time, busbw = bytes/time x 2(n-1)/n (GB/s)\n${text}\n`);
  mkdirSync(outDir, { recursive: true });
  const json = `${outDir}/bench.json`;
  writeFileSync(json, JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, node: process.version, budget, rows }, null, 1));
  if (existsSync(PYTHON)) {
    const plot = spawnSync(PYTHON, [`${BENCH_DIR}plot.py`, json, `${outDir}/bench.png`], { stdio: "inherit" });
    if (plot.status === 0) process.stdout.write(`[bench] wrote ${json} and ${outDir}/bench.png\n`);
  } else {
    process.stdout.write(`[bench] wrote ${json} (no plot: run bench/setup.sh for matplotlib)\n`);
  }
  return 0;
}
