// `unicc-bench engine`'s unicc worker on one host: it hands a random workload to allreduce by
// name, checks the sums against its own reference and reports step times; the runner's argument
// errors; and a missing peer named with how to install it. Timings are not judged here (that is
// what the benchmark is for).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

import { runJob } from "../../core-native/test/run-job.js";

const WORKER = fileURLToPath(new URL("../dist/engine-worker.js", import.meta.url));
const BENCH = fileURLToPath(new URL("../bin/unicc-bench.js", import.meta.url));

describe("unicc-bench engine", () => {
  const dir = mkdtempSync(join(tmpdir(), "unicc-bench-engine-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // A few tensors of random sizes, and a backward trace that makes them ready in a shuffled order.
  const tensors = Array.from({ length: 3 + Math.floor(Math.random() * 6) }, (_, i) => {
    const numel = 1 + Math.floor(Math.random() * 50_000);
    return { name: `layer${i}.weight`, shape: [numel], numel };
  });
  const workload = join(dir, "workload.json");
  writeFileSync(workload, JSON.stringify({ tensors }));
  const trace = join(dir, "trace.json");
  const order = tensors.map((t) => t.name).sort(() => Math.random() - 0.5);
  writeFileSync(trace, JSON.stringify({ tensors: order.map((name, i) => ({ name, ready_s: (i + 1) / order.length })) }));

  const result = (stdout: string) => JSON.parse(/^\[0\] (\{"result".*)$/m.exec(stdout)?.[1] ?? "null")?.result;

  for (const compression of ["none", "fp16"] as const)
    it(`exchanges and checks a random workload (compression ${compression})`, async () => {
      const cfg = { workload, mode: "exchange", compression, warmup: 1, steps: 2 };
      const job = await runJob(["-np", "2", process.execPath, WORKER, JSON.stringify(cfg)]);
      expect(job.code, job.stderr).toBe(0);
      expect(job.stderr).toContain("result checked on every rank");
      const r = result(job.stdout);
      expect(r.times_s).toHaveLength(2);
      expect(r.median_s).toBeGreaterThan(0);
    });

  it("replays a backward trace and reports the compute-only step beside it", async () => {
    const cfg = { workload, mode: "replay", compression: "none", warmup: 1, steps: 2, trace, computeS: 0.2 };
    const job = await runJob(["-np", "2", process.execPath, WORKER, JSON.stringify(cfg)]);
    expect(job.code, job.stderr).toBe(0);
    const r = result(job.stdout);
    // Each step sleeps through the scaled trace, with or without communication.
    expect(r.compute_only_s).toBeGreaterThanOrEqual(0.2);
    expect(r.median_s).toBeGreaterThanOrEqual(0.2);
  });

  it("rejects bad options and a file that is not a workload before touching the network", () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [BENCH, "engine", ...args], { encoding: "utf8" });
    expect(cli(["--steps", "0"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/--steps needs a whole number of at least 1, got '0'/) });
    expect(cli(["--frobnicate"])).toMatchObject({ status: 2, stderr: expect.stringMatching(/unknown option '--frobnicate'/) });
    expect(cli(["--help"])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage: unicc-bench engine/) });
    writeFileSync(join(dir, "bad.json"), JSON.stringify({ layers: [] }));
    expect(cli(["--workload", join(dir, "bad.json")])).toMatchObject({ status: 2, stderr: expect.stringMatching(/bad\.json is not a workload/) });
  });

  it("names a missing peer with how to install it, and installs nothing", () => {
    const empty = mkdtempSync(join(dir, "path-"));
    const bench = (args: string[], env: NodeJS.ProcessEnv) => spawnSync(process.execPath, [BENCH, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
    const gloo = bench(["--peers", "gloo"], { UNICC_BENCH_PYTHON: join(empty, "python") });
    expect(gloo.status, gloo.stderr).toBe(1);
    expect(gloo.stderr).toMatch(/gloo: PyTorch .* is not importable by .*path-\w+\/python.*\n.*pip install torch==2\.13\.0/);
    const mpi = bench(["--peers", "mpi"], { PATH: empty });
    expect(mpi.status, mpi.stderr).toBe(1);
    expect(mpi.stderr).toMatch(/mpi: Open MPI is missing \(mpirun, mpicc not on PATH\).*\n.*apt-get install openmpi-bin/);
    expect(mpi.stdout).toBe("");
  });
});
