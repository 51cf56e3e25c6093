// Elastic jobs on a real local Ray cluster (`unicc run --ray`): the slots are the cluster's CPUs,
// each rank a Ray actor. torch ranks under unicc.elastic.State (the torch elastic test's worker):
// an actor killed (ray.kill, or SIGKILL of its process) leaves the job at the smaller size, the CPU
// it frees is filled again at a later commit, a node joining the cluster adds a rank at the next
// commit, and a node lost takes its rank along; the final weights equal a reference trained in one
// process at the same sizes.
import { execFileSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

import { expectReference } from "../../packages/core-native/test/elastic-check.js";
import { runJob, type JobResult } from "../../packages/core-native/test/run-job.js";
import { RayNode, rayPython } from "./ray-cluster.js";

const TRAIN = fileURLToPath(new URL("../../packages/adapter-torch-bridge/test/workers/elastic_train.py", import.meta.url));
const STEPS = 12;

describe("elastic jobs on Ray (unicc run --ray)", () => {
  let python: string;
  let out: string;
  let head: RayNode | undefined;
  let added: RayNode | undefined;
  let address: string;
  let seed: number;
  let shmBefore: Set<string>;
  const shm = () => readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-"));

  beforeAll(async () => {
    python = rayPython();
    out = mkdtempSync("/var/tmp/unicc-ray-elastic-");
    ({ head, address } = await RayNode.head(python, 2, `${out}/ray`));
  }, 600_000);
  afterAll(async () => {
    await added?.stop();
    await head?.stop();
    rmSync(out, { recursive: true, force: true });
  }, 60_000);

  beforeEach(() => {
    seed = randomInt(1, 1 << 20);
    shmBefore = new Set(shm());
  });
  afterEach(() => {
    const mine = `elastic_train.py\0train\0${seed}\0`;
    const left = readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "latin1").includes(mine);
      } catch {
        return false;
      }
    });
    expect(left, "ranks left running").toEqual([]);
    expect(aliveActors(), "Ray actors left alive").toEqual([]);
    expect(shm().filter((f) => !shmBefore.has(f))).toEqual([]);
  }, 60_000);

  /** Names of the cluster's live actors in namespace "unicc" (where the ranks' actors live). */
  function aliveActors(): string[] {
    const code = `import ray; ray.init(address=${JSON.stringify(address)}, _node_ip_address="127.0.0.2", log_to_driver=False, configure_logging=False)
from ray._private.state import actors
print("\\n".join(a["Name"] for a in actors().values() if a["State"] == "ALIVE" and a.get("RayNamespace") == "unicc"))`;
    return execFileSync(python, ["-c", code], { encoding: "utf8", timeout: 60_000 }).split("\n").filter(Boolean);
  }

  function reference(sched: string): number[] {
    const text = execFileSync(python, [TRAIN, "reference", String(seed), String(STEPS), sched], { encoding: "utf8" });
    return /^FINAL (.*)$/m.exec(text)![1].split(" ").map(Number);
  }

  /** `unicc run --ray` of the torch worker; rank 0 writes `joined` at step joinAt and commits until the world has joinSize ranks. */
  function job(np: number, min: number, max: number, kills: string, joinAt: number, joinSize: number, joined: string): Promise<JobResult> {
    const rankEnv = [`RAY_ADDRESS=${address}`, `JOIN_AT=${joinAt}`, `JOIN_HOSTS=${joined}`, "JOIN_LINE=joined", `JOIN_SIZE=${joinSize}`, "OMP_NUM_THREADS=1"];
    return runJob(["--ray", address, "--min-np", String(min), "--max-np", String(max), "-np", String(np), "--rendezvous-addr", "127.0.0.2",
      "--timeout", "10", "--discovery-interval", "1", "--", "env", ...rankEnv, python, TRAIN, "train", String(seed), String(STEPS), "2", kills],
    { env: { UNICC_RAY_PYTHON: python, UNICC_RAY_NODE_IP: "127.0.0.2", RAY_USAGE_STATS_ENABLED: "0" }, timeoutMs: 400_000 });
  }

  it.each([
    ["ray.kill()ed", "ray"],
    ["SIGKILLed in its process", "actor"],
  ])("an actor %s mid-step: the other rank goes on alone from the last commit, and the CPU Ray frees gets a rank again at a later commit", async (_what, how) => {
    // Killed in step 5, after the commit at step 4: step 4 is done again at 1 rank; at step 6 the
    // rank started on the freed CPU joins.
    const r = await job(2, 1, 2, `1@5:${how}`, 6, 2, `${out}/joined-${seed}`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker 1 \(rank 1 of generation 1, host 127\.0\.0\.2, pid \d+\) exited with code 137; re-forming the world without it/);
    expect(r.stderr).toMatch(/the Ray actor of this rank on 127\.0\.0\.2 died/);
    expect(r.stderr).toMatch(/generation 2: 1 ranks\n[^]*generation 3: 2 ranks \(1 joined\)/);
    expectReference(r, "0:2,4:1,6:2", 2, reference, 1e-12);
  }, 420_000);

  it("a node joining the Ray cluster adds a rank at the next commit, which gets the members' state; the job ends at 3 ranks", async () => {
    const joined = `${out}/joined-${seed}`;
    const run = job(2, 2, 3, "", 4, 3, joined);
    // Rank 0 is at step 4 and waits for a third rank: give the cluster a node with one CPU.
    const until = Date.now() + 300_000;
    while (!existsSync(joined) && Date.now() < until) await new Promise((res) => setTimeout(res, 200));
    added = await RayNode.start(python, address, "127.0.0.3", [`--address=${address}`, "--num-cpus=1"]);
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/generation 2: 3 ranks \(1 joined\)/);
    expect(r.stdout).toMatch(/^\[2\] FINAL /m);
    expectReference(r, "0:2,4:3", 3, reference, 1e-12);
  }, 420_000);

  it("a Ray node lost mid-job (its `ray start` stopped) takes its rank's actor along: the others go on from the last commit at the smaller size", async () => {
    added ??= await RayNode.start(python, address, "127.0.0.3", [`--address=${address}`, "--num-cpus=1"]);
    const lose = `${out}/lose-${seed}`;
    // 3 ranks: 2 on the head, 1 on the added node (which rank that is follows Ray's node order);
    // at step 4 the ranks commit until the world has 2.
    const run = job(3, 2, 3, "", 4, 2, lose);
    const until = Date.now() + 300_000;
    while (!existsSync(lose) && Date.now() < until) await new Promise((res) => setTimeout(res, 200));
    await added.stop();
    added = undefined;
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stderr).toMatch(/worker \d \(rank \d of generation 1, host 127\.0\.0\.3, pid \d+\) [^;\n]+; re-forming the world without it/);
    expect(r.stderr).toMatch(/generation 2: 2 ranks/);
    expectReference(r, "0:3,4:2", 2, reference, 1e-12);
  }, 420_000);
});
