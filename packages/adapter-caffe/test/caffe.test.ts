// Real Caffe 1.0 (Debian bullseye's CPU build, Python 3.9) in a root of its own; every job runs its
// ranks there through `unicc run --bridge`, the bridges outside in the launcher's environment.
import { randomInt } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

import { caffeJobs, IN_CONTAINER, IN_ROOT, inRoot, pipInstalled, lines, runJob, UNICC_CAFFE, WORKERS } from "./helpers.js";

const TIMEOUT_S = 10;
const job = caffeJobs();

const inRootJob = (np: number, cmd: string[]) =>
  runJob(["-np", String(np), "--bridge", "--timeout", String(TIMEOUT_S), "--", IN_ROOT, ...cmd], { env: job.env });

describe("unicc.caffe.get_solver: N iterations on 4 ranks with batch b equal one process with batch 4b", () => {
  it("SGD with momentum and weight decay, Adam and Nesterov, MemoryData sharded by uc.data.shard_batches, shared weights reduced once", async () => {
    const r = await inRootJob(4, ["python3", `${WORKERS}equivalence.py`, String(randomInt(1, 1 << 20)), job.dir, "4", "3", "sgd,adam,nesterov"]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const kind of ["sgd", "adam", "nesterov"]) {
      // 6 blobs: ip1, ip2 (= ip3, shared) and ip4, weights and biases
      expect(lines(r, 0)).toMatch(new RegExp(`^OK ${kind} err=\\S+ moved=\\S+ blobs=6 values=\\d+$`, "m"));
      const digests = [0, 1, 2, 3].map((rank) => new RegExp(`WEIGHTS ${kind} (\\w+)`).exec(lines(r, rank))?.[1]);
      expect(new Set(digests).size, digests.join(" ")).toBe(1);
      expect(digests[0]).toBeDefined();
    }
  });
});

describe("overlap=True: each blob goes to the engine from pycaffe's per-layer backward hook", () => {
  it("every blob handed over during backward from the second iteration on, and the same weights as without (bitwise), equal to one process", async () => {
    const seed = String(randomInt(1, 1 << 20));
    const run = (overlap: string) => inRootJob(4, ["python3", `${WORKERS}equivalence.py`, seed, job.dir, "4", "3", "sgd,adam", "none", "16", overlap]);
    const [plain, early] = [await run("no"), await run("overlap")];
    for (const r of [plain, early]) expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const kind of ["sgd", "adam"]) {
      expect(lines(early, 0)).toMatch(new RegExp(`^OK ${kind} `, "m"));
      for (let rank = 0; rank < 4; rank++) {
        const digest = (r: typeof plain) => new RegExp(`WEIGHTS ${kind} (\\w+)`).exec(lines(r, rank))?.[1];
        expect(digest(early)).toBeDefined();
        expect(digest(early)).toBe(digest(plain));
        expect(lines(early, rank)).toContain(`OVERLAPPED ${kind} ${6 * 2}`); // 6 blobs, iterations 2 and 3 (the first counts backward passes)
      }
    }
  });
});

describe("uc.data.write_hdf5 + Caffe's HDF5Data layer", () => {
  it("on 4 ranks each rank reads a disjoint part of the rows, together all of them once, and 3 iterations equal one process with the whole batch", async () => {
    const [batch, iters] = [4, 3];
    const rows = 4 * batch * iters;
    // 20 rows per file: file ends fall inside global batches.
    const source = inRoot(job.env, ["python3", "make_hdf5.py", String(randomInt(1, 1 << 20)), job.dir, String(rows), "20"]).trim();
    const r = await inRootJob(4, ["python3", `${WORKERS}hdf5.py`, job.dir, source, String(batch), String(iters)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const read = [0, 1, 2, 3].map((rank) => /ROWS (\S+)/.exec(lines(r, rank))![1].split(",").map(Number));
    for (const part of read) expect(part.length).toBe(batch * iters);
    expect(read.flat().sort((a, b) => a - b)).toEqual([...Array(rows).keys()]); // disjoint and covering
    const digests = [0, 1, 2, 3].map((rank) => /WEIGHTS (\w+)/.exec(lines(r, rank))?.[1]);
    expect(new Set(digests).size, digests.join(" ")).toBe(1);
    const m = /OK err=(\S+) moved=(\S+)/.exec(lines(r, 0));
    expect(m, lines(r, 0)).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(1e-5);
    expect(Number(m![2])).toBeGreaterThan(1e-3);
  });
});

describe("ranks in containers that share only the bridge folder (in-container.sh)", () => {
  it("train what the in-root ranks train, seeing neither this machine's /dev/shm nor the repository", async () => {
    const seed = String(randomInt(1, 1 << 20));
    const bridgeDir = `${job.dir}/bridge`;
    mkdirSync(bridgeDir);
    const marker = `/dev/shm/unicc-caffe-test-marker-${process.pid}`;
    writeFileSync(marker, "host only");
    try {
      const site = "/usr/local/lib/python3.9/dist-packages";
      const volumes = [...pipInstalled(site), `${WORKERS}:/opt/job:ro`].flatMap((v) => ["-v", v]);
      const args = ["equivalence.py", seed, "/tmp", "4", "3", "sgd,adam"];
      const boxed = await runJob(["-np", "4", "--bridge-dir", bridgeDir, "--timeout", String(TIMEOUT_S), "--", IN_CONTAINER, ...volumes,
        "-e", "OMP_NUM_THREADS", "-e", "OPENBLAS_NUM_THREADS", "-w", "/opt/job", "--",
        "python3", "/opt/job/container.py", WORKERS, ...args], { env: job.env });
      expect(boxed.code, boxed.stdout + boxed.stderr).toBe(0);
      const inRootRun = await inRootJob(4, ["python3", `${WORKERS}${args[0]}`, seed, job.dir, ...args.slice(3)]);
      expect(inRootRun.code, inRootRun.stdout + inRootRun.stderr).toBe(0);
      for (let rank = 0; rank < 4; rank++) {
        const sees = JSON.parse(/^SEES (.*)$/m.exec(lines(boxed, rank))![1]) as { shm: string[]; host_path: boolean; mounts: string[]; unicc: string };
        expect(sees.shm, "the container's /dev/shm is its own").toEqual([]);
        expect(sees.host_path, "the repository is not visible").toBe(false);
        expect(sees.unicc).toBe(`${site}/unicc`);
        expect(sees.mounts).toEqual(["/", "/dev/shm", "/opt/job", "/proc", bridgeDir, ...pipInstalled(site).map((v) => v.split(":")[1])].sort());
        const results = (r: typeof boxed) => lines(r, rank).split("\n").filter((l) => /^(OK|DIFF|WEIGHTS) /.test(l));
        expect(results(boxed)).toEqual(results(inRootRun));
        expect(results(boxed).length).toBe(rank === 0 ? 4 : 2);
      }
      expect(lines(boxed, 0)).toMatch(/^OK adam /m);
      expect(readdirSync(bridgeDir)).toEqual([]); // sockets and slabs gone with the job
    } finally {
      rmSync(marker, { force: true });
    }
  });
});

describe("unicc-caffe train", () => {
  it("trains on 4 ranks from an LMDB (Caffe's Data layer sharded by rank) the same weights as the Python API, and those of one process with the whole batch; caffe train's log lines from rank 0 only", async () => {
    const db = `${job.dir}/db`;
    inRoot(job.env, ["python3", "make_lmdb.py", String(randomInt(1, 1 << 20)), db, "256"]);
    const solver = inRoot(job.env, ["python3", "cli_solver.py", job.dir, db, "4", "6"]).trim();
    const cli = await inRootJob(4, [UNICC_CAFFE, "train", "--solver", solver]);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    const log = (rank: number) => cli.stderr.split("\n").filter((l) => l.startsWith(`[${rank}] `)).join("\n");
    for (const line of ["caffe.cpp] Use CPU.", "caffe.cpp] Starting Optimization", "Solving mlp", "Snapshotting to binary proto file", "caffe.cpp] Optimization Done."])
      expect(log(0)).toContain(line);
    for (const rank of [1, 2, 3]) expect(log(rank)).not.toMatch(/Solving|Snapshotting|Optimization/);

    const api = await inRootJob(4, ["python3", `${WORKERS}api_weights.py`, job.dir, db, "4", "6"]);
    expect(api.code, api.stdout + api.stderr).toBe(0);
    const m = /SAME (\S+) (\S+) moved (\S+)/.exec(lines(api, 0));
    expect(m, lines(api, 0)).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(1e-6); // the same computation: bitwise, in practice
    expect(Number(m![2])).toBeLessThanOrEqual(1e-5);
    expect(Number(m![3])).toBeGreaterThan(1e-3);
  });

  it("a missing solver file, or a net prototxt that does not parse: one line per rank saying which file, exit non-zero", async () => {
    const bad = `${job.dir}/bad-solver.prototxt`;
    writeFileSync(bad, `net: "${job.dir}/bad-net.prototxt"\nbase_lr: 0.1\n`);
    writeFileSync(`${job.dir}/bad-net.prototxt`, 'layer { name: "x" type: "ReLU"\n'); // no closing brace
    for (const [solver, what] of [
      [`${job.dir}/nope.prototxt`, `cannot read solver file ${job.dir}/nope.prototxt: No such file or directory`],
      [bad, `net file (named in ${bad}) ${job.dir}/bad-net.prototxt does not parse: `],
    ]) {
      const r = await inRootJob(2, [UNICC_CAFFE, "train", "--solver", solver]);
      expect(r.code).not.toBe(0);
      for (const rank of [0, 1]) {
        const own = r.stderr.split("\n").filter((l) => l.startsWith(`[${rank}] `));
        expect(own.length, r.stderr).toBeLessThanOrEqual(1);
        if (own.length) expect(own[0]).toContain(`unicc.caffe: ${what}`);
      }
      expect(r.stderr).not.toMatch(/Traceback|Check failure/);
      expect(r.stderr).toMatch(/unicc: rank \d .*exited with code 1 first/);
    }
  });
});

describe("failures during Solver.step raise in Python, naming what died, within the bound", () => {
  for (const what of ["rank", "bridge"]) {
    it(`a killed ${what}: every other rank's step raises naming that rank${what === "bridge" ? "; its own names its bridge, the launcher too" : ""}`, async () => {
      const victim = randomInt(0, 4);
      const r = await inRootJob(4, ["python3", `${WORKERS}faults.py`, String(randomInt(1, 1 << 20)), job.dir, String(victim), what]);
      expect(r.code).not.toBe(0);
      for (let rank = 0; rank < 4; rank++) {
        if (rank === victim) continue;
        const m = /RAISED (\S+) UniccError: (.*)/.exec(lines(r, rank));
        expect(m, `rank ${rank}:\n${lines(r, rank)}\n${r.stderr}`).not.toBeNull();
        expect(m![2]).toMatch(new RegExp(`rank ${victim} \\(host [^,]+, pid \\d+\\) died`));
        expect(Number(m![1])).toBeLessThan(TIMEOUT_S);
      }
      if (what === "bridge") {
        expect(lines(r, victim)).toMatch(new RegExp(`RAISED \\S+ BridgeError: unicc: rank ${victim}: the bridge process \\(pid \\d+\\) closed its connection`));
        expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(.*\\) lost its bridge \\(pid \\d+\\), which was killed by SIGKILL first`));
      } else expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(.*\\) was killed by SIGKILL first`));
    });
  }
});

describe("examples/caffe-lenet", () => {
  it("4 ranks reach the test accuracy of 1 rank within 1 point (same global batch)", async () => {
    const train = fileURLToPath(new URL("../../../examples/caffe-lenet/train.py", import.meta.url));
    const acc: number[] = [];
    for (const np of [1, 4]) {
      const r = await inRootJob(np, ["python3", train, "--epochs", "1", "--out", job.dir]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      acc.push(Number(/FINAL accuracy (\S+)/.exec(lines(r, 0))![1]));
    }
    expect(acc[0], acc.join(" ")).toBeGreaterThan(0.9);
    expect(Math.abs(acc[0] - acc[1]), acc.join(" ")).toBeLessThanOrEqual(0.01);
  }, 240_000);
});
