// etcd as the rendezvous store, for real (Debian's etcd-server 3.4 on loopback): `unicc run
// --rendezvous etcd://...`, ranks started by hand with only UNICC_RENDEZVOUS and their rank, keys
// that expire with a dead rank's lease, an elastic job whose membership lives there, and a clear
// error when nobody listens there.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { expectCorrect, worker } from "../../packages/core-native/test/collectives-check.js";
import { schedule } from "../../packages/core-native/test/elastic-check.js";
import { collect, handStarted, oneRankEach, runJob, type JobResult } from "../../packages/core-native/test/run-job.js";
import { freePorts } from "../free-port.js";

const TF_ELASTIC = fileURLToPath(new URL("../../packages/adapter-tf/test/workers/elastic.mjs", import.meta.url));
const TF_ENV = { TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "1", OMP_NUM_THREADS: "1" };

const missing = spawnSync("sh", ["-c", "command -v etcd && command -v etcdctl"]).status === 0
  ? null : "etcd not found (Debian: apt-get install etcd-server etcd-client)";

function etcdKeys(endpoint: string, prefix: string): string[] {
  const r = spawnSync("etcdctl", ["--endpoints", endpoint, "get", "--prefix", "--keys-only", prefix], {
    encoding: "utf8", env: { ...process.env, ETCDCTL_API: "3" },
  });
  return r.stdout.split("\n").filter(Boolean);
}

/** Ranks started by hand: no launcher, only their rank, the world size and the etcd URL. */
function runRanks(size: number, env: NodeJS.ProcessEnv): Promise<JobResult> {
  return collect(Array.from({ length: size }, (_, rank) => {
    const e = handStarted({ ...env, RANK: String(rank), WORLD_SIZE: String(size) });
    return spawn(process.execPath, worker.slice(1), { env: e, stdio: ["ignore", "pipe", "pipe"] });
  }), { byRank: oneRankEach });
}

describe.skipIf(missing !== null)(`etcd rendezvous${missing ? `: skipped, ${missing}` : ""}`, () => {
  let etcd: ChildProcess;
  let dir: string;
  let port: number;
  let endpoint: string;

  beforeAll(async () => {
    port = await freePorts("etcd test server", 2); // clients, and peers on the next
    endpoint = `http://127.0.0.1:${port}`;
    dir = mkdtempSync("/var/tmp/unicc-etcd-");
    const peer = `http://127.0.0.1:${port + 1}`;
    etcd = spawn("etcd", ["--name", "u", "--data-dir", dir, "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", `u=${peer}`], { stdio: "ignore" });
    const until = Date.now() + 20_000;
    while (spawnSync("etcdctl", ["--endpoints", endpoint, "endpoint", "health"], { env: { ...process.env, ETCDCTL_API: "3" } }).status !== 0) {
      if (Date.now() > until) throw new Error("etcd did not become healthy within 20 s");
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 30_000);
  afterAll(async () => {
    etcd?.kill("SIGTERM");
    await new Promise((r) => (etcd?.exitCode !== null ? r(0) : etcd.once("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  });

  it("unicc run --rendezvous etcd://...: 4 ranks meet in etcd, exact; their keys expire with their leases after the job", async () => {
    const r = await runJob(["-np", "4", "--rendezvous", `etcd://127.0.0.1:${port}/t1`, ...worker], { env: { UNICC_RENDEZVOUS_TTL_S: "4" } });
    expectCorrect(r, 4, "shm");
    expect(etcdKeys(endpoint, "/t1/").length).toBeGreaterThan(0); // they met there, not in the launcher's store
    const until = Date.now() + 12_000;
    while (etcdKeys(endpoint, "/t1/").length && Date.now() < until) await new Promise((res) => setTimeout(res, 250));
    expect(etcdKeys(endpoint, "/t1/")).toEqual([]);
  });

  it("ranks started by hand with RANK, WORLD_SIZE and UNICC_RENDEZVOUS only (no MASTER_ADDR): exact", async () => {
    const r = await runRanks(3, { UNICC_RENDEZVOUS: `etcd://127.0.0.1:${port}/t2`, UNICC_TIMEOUT_S: "20" });
    expectCorrect(r, 3, "shm");
  });

  it("rank 1 of 2 alone: fails within the bound naming the key it waited for; killed, its keys expire with its lease", async () => {
    const url = (p: string) => `etcd://127.0.0.1:${port}/${p}`;
    const rankOne = (p: string, timeoutS: string) => {
      const env = handStarted({ RANK: "1", WORLD_SIZE: "2", UNICC_RENDEZVOUS: url(p), UNICC_RENDEZVOUS_TTL_S: "2", UNICC_TIMEOUT_S: timeoutS });
      return spawn(process.execPath, worker.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
    };
    const alone = rankOne("t3", "3");
    let err = "";
    alone.stderr!.on("data", (d) => (err += d));
    const t0 = Date.now();
    const code = await new Promise((r) => alone.on("close", r));
    expect(code).not.toBe(0);
    expect(err).toMatch(/rendezvous key '[^']+' was not set in etcd within 3000 ms/);
    expect(Date.now() - t0).toBeLessThan(10_000);

    const victim = rankOne("t4", "60");
    const until = Date.now() + 10_000;
    while (!etcdKeys(endpoint, "/t4/").length && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(etcdKeys(endpoint, "/t4/").length).toBeGreaterThan(0);
    victim.kill("SIGKILL");
    const gone = Date.now() + 10_000;
    while (etcdKeys(endpoint, "/t4/").length && Date.now() < gone) await new Promise((r) => setTimeout(r, 250));
    expect(etcdKeys(endpoint, "/t4/")).toEqual([]);
  });

  it("an elastic job with --rendezvous etcd keeps its membership there: a rank SIGKILLed mid-step, the other 2 go on from the last commit with the reference's weights", async () => {
    const seed = randomInt(1, 1 << 20);
    const train = (mode: string, ...args: string[]) => ["node", TF_ELASTIC, mode, "--seed", String(seed), "--steps", "10", ...args];
    const r = await runJob(["--min-np", "2", "-np", "3", "--timeout", "10", "--rendezvous", `etcd://127.0.0.1:${port}/t5`, "--",
      ...train("train", "--commit-every", "2", "--kill", "2@5")], { env: TF_ENV, timeoutMs: 100_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(etcdKeys(endpoint, "/t5/").filter((k) => /unicc\/elastic\/world\/2$/.test(k))).toHaveLength(1);
    expect(schedule(r), r.stdout + r.stderr).toBe("0:3,4:2");
    const finals = [...r.stdout.matchAll(/^\[\d+\] FINAL (.*)$/gm)].map((m) => JSON.parse(m[1]) as number[]);
    const [node, ...refArgs] = train("reference", "--schedule", "0:3,4:2");
    const ref = spawnSync(node, refArgs, { encoding: "utf8", env: { ...process.env, ...TF_ENV } });
    const want = JSON.parse(/^FINAL (.*)$/m.exec(ref.stdout)![1]) as number[];
    expect(finals).toHaveLength(2);
    for (const got of finals) got.forEach((v, i) => expect(Math.abs(v - want[i]), `weight ${i}`).toBeLessThan(1e-5));
  }, 120_000);

  it("an etcd URL nobody listens on: every rank fails at once saying so", async () => {
    const r = await runJob(["-np", "2", "--rendezvous", `etcd://127.0.0.1:${port + 7}/none`, ...worker], { timeoutMs: 30_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot reach the etcd rendezvous at etcd:\/\/127\.0\.0\.1:\d+\/none: .*is etcd running there\?/);
    expect(r.ms).toBeLessThan(15_000);
  });
});
