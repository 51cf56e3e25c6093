import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";
import { expectCorrect, worker } from "./collectives-check.js";
import { CLI, collect, handStarted, oneRankEach, runJob, WORKERS, type JobResult } from "./run-job.js";

describe("ranks on distinct host identities over loopback (forces TCP between hosts)", () => {
  it("2 hosts x 2 ranks: shared memory inside, TCP across (hierarchical)", async () => {
    const r = await runJob(["-H", "a:2,b:2", "--launch-agent", "env", ...worker]);
    expectCorrect(r, 4, "hierarchical");
  });

  it("2 hosts x 2 ranks with UNICC_HIERARCHICAL=0: one flat ring (shared-memory channels inside hosts, TCP across)", async () => {
    const r = await runJob(["-H", "a:2,b:2", "--launch-agent", "env", ...worker], { env: { UNICC_HIERARCHICAL: "0" } });
    expectCorrect(r, 4, "ring");
  });

  it("hosts with different rank counts (1 + 2): the flat ring", async () => {
    const r = await runJob(["-H", "a:1,b:2", "--launch-agent", "env", ...worker]);
    expectCorrect(r, 3, "ring");
  });
});

const skip = netnsUnavailable();
describe.skipIf(skip !== null)(`ranks on two emulated hosts (network namespaces)${skip ? `: skipped, ${skip}` : ""}`, () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await up({ hosts: 2 });
  });
  afterAll(async () => {
    await cluster?.down();
  });

  it("2 hosts x 2 ranks give the same results as one host (ranks bound to each host's eth0)", async () => {
    const hosts = cluster.hosts.map((h) => `${h.name}:2`).join(",");
    const r = await runJob([
      "-H", hosts, "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr,
      "--network-interface", "eth0", ...worker,
    ]);
    expectCorrect(r, 4, "hierarchical");
  });

  it("2 hosts x 1 rank: the engine's batches of named tensors (out of order, 4 dtypes) cross as one schedule each, exact; fp16 within its bound", async () => {
    const hosts = cluster.hosts.map((h) => `${h.name}:1`).join(",");
    const engine = (...args: string[]) =>
      runJob(["-H", hosts, "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr,
        "--network-interface", "eth0", "node", `${WORKERS}engine.mjs`, ...args]);
    const said = (r: JobResult, prefix: string) => [...r.byRank.values()].flat().filter((l) => l.startsWith(prefix));
    const mixed = await engine("mixed");
    expect(mixed.code, mixed.stderr + mixed.stdout).toBe(0);
    expect(said(mixed, "OK mixed")).toHaveLength(2);
    const scale = await engine("scale", "fp16");
    expect(scale.code, scale.stderr).toBe(0);
    const errors = said(scale, "SCALE").map((l) => Number(l.split(" ").pop()));
    expect(errors).toHaveLength(4);
    for (const e of errors) {
      expect(e, "no rounding at all: the values did not travel in 16 bits").toBeGreaterThan(0);
      expect(e).toBeLessThanOrEqual(2 * 2 ** -11);
    }
  });

  it("a host whose link is cut: the ranks on the other host fail within the bound, naming one on it", async () => {
    const timeoutS = 5;
    const hosts = cluster.hosts.map((h) => `${h.name}:2`).join(",");
    const r = await runJob(
      ["-H", hosts, "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr, "--grace", "1",
        "node", `${WORKERS}faults.mjs`, "isolate", "2", "5"],
      { env: { UNICC_TIMEOUT_S: String(timeoutS) } },
    );
    expect(r.code).not.toBe(0);
    const cutAt = Number(/DYING (\d+)/.exec(r.byRank.get(2)!.join("\n"))![1]);
    for (const rank of [0, 1]) {
      const m = /ERROR (\d+) (.*)/.exec(r.byRank.get(rank)!.join("\n"));
      expect(m, r.stdout).not.toBeNull();
      expect(m![2]).toMatch(new RegExp(`rank [23] \\(host ${cluster.hosts[1].name}, pid \\d+\\)`));
      expect(m![2]).toMatch(/made no progress for 5 s/);
      expect(Number(m![1]) - cutAt).toBeLessThan((timeoutS + 5) * 1000);
    }
  });
});

// Ranks started by hand with torchrun's variables (no `unicc run`, so no UNICC_HOST_ID): which ranks
// share a host must come from what they can share, since every "machine" here has the same name.
function runRanks(size: number, start: (rank: number, env: NodeJS.ProcessEnv) => ChildProcess): Promise<JobResult> {
  return collect(Array.from({ length: size }, (_, rank) => {
    return start(rank, handStarted({ RANK: String(rank), WORLD_SIZE: String(size), UNICC_TIMEOUT_S: "20" }));
  }), { byRank: oneRankEach });
}

const probesLeft = () => readdirSync("/dev/shm").filter((f) => /^unicc-.*-probe-\d+$/.test(f));

describe.skipIf(skip !== null)("host identity: machines that share a hostname but not memory", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await up({ hosts: 2, sameHostname: "node" });
  });
  afterAll(async () => {
    await cluster?.down();
  });

  it("2 emulated machines x 2 ranks, both named 'node', each its own /dev/shm: two hosts, correct results", async () => {
    expect(cluster.hosts.map((h) => h.hostname)).toEqual(["node", "node"]);
    const port = String(20000 + randomInt(20000));
    const r = await runRanks(4, (rank, env) =>
      cluster.exec(rank >> 1, [process.execPath, ...worker.slice(1)], {
        env: { ...env, MASTER_ADDR: cluster.hosts[0].addr, MASTER_PORT: port, UNICC_HOST_ADDR: cluster.hosts[rank >> 1].addr },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    expectCorrect(r, 4, "hierarchical");
  });

  it("one launcher per machine (--nnodes 2 --node-rank K, torchrun's shape), one shared token: two hosts, exact", async () => {
    const port = String(20000 + randomInt(20000));
    const token = randomBytes(32).toString("hex");
    const nodes = [0, 1].map((k) =>
      cluster.exec(k, [process.execPath, CLI, "run", "--nnodes", "2", "--node-rank", String(k), "-np", "2",
        "--master-addr", cluster.hosts[0].addr, "--master-port", port, ...worker], {
        env: { ...process.env, UNICC_JOB_TOKEN: token, UNICC_TIMEOUT_S: "20" }, stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    const r = await collect(nodes);
    expectCorrect(r, 4, "hierarchical");
    expect(r.stderr).not.toMatch(/not authenticated/);
  });

  it("2 containers x 2 ranks on one machine (same hostname, private /dev/shm each): two hosts; no probe file left", async () => {
    const holders = [0, 1].map(() =>
      spawn("unshare", ["--uts", "--mount", "--propagation", "private", "sh", "-c",
        "hostname box && mount -t tmpfs tmpfs /dev/shm && echo ready && exec sleep 600"], { stdio: ["ignore", "pipe", "inherit"] }),
    );
    try {
      await Promise.all(holders.map((h) => new Promise((resolve) => h.stdout!.once("data", resolve))));
      const port = String(20000 + randomInt(20000));
      const r = await runRanks(4, (rank, env) =>
        spawn("nsenter", ["--target", String(holders[rank >> 1].pid), "--uts", "--mount", "--", process.execPath, ...worker.slice(1)], {
          env: { ...env, MASTER_ADDR: "127.0.0.1", MASTER_PORT: port },
          stdio: ["ignore", "pipe", "pipe"],
        }),
      );
      expectCorrect(r, 4, "hierarchical");
    } finally {
      holders.forEach((h) => h.kill("SIGKILL"));
    }
  });

  it("ranks that do share /dev/shm stay one host whatever their count; the probes are removed", async () => {
    const before = probesLeft();
    const port = String(20000 + randomInt(20000));
    const r = await runRanks(3, (_rank, env) =>
      spawn(process.execPath, worker.slice(1), { env: { ...env, MASTER_ADDR: "127.0.0.1", MASTER_PORT: port }, stdio: ["ignore", "pipe", "pipe"] }),
    );
    expectCorrect(r, 3, "shm");
    expect(probesLeft().filter((f) => !before.includes(f))).toEqual([]);
  });
});
