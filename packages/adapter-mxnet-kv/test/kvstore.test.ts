import { randomInt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";
import { diffs, lines, runJob, venvPython, WORKERS } from "./helpers.js";
import { expectDeathNamed } from "../../core-native/test/death-check.js";

const TIMEOUT_S = 10;
let python: string;

beforeAll(() => {
  python = venvPython();
}, 600_000);

describe("dist_sync_unicc: 4 ranks with batch b each equal 1 process with batch 4b (from different random initial weights)", () => {
  it("gluon.Trainer by name and by instance, DistributedTrainer, Module.fit; init/push/pull/pushpull with int and str keys and lists", async () => {
    const r = await runJob(["-np", "4", python, `${WORKERS}equivalence.py`, String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(diffs(r, 4, () => 1e-5)).toEqual([9, 9, 9, 9]);
    for (let rank = 0; rank < 4; rank++) expect(lines(r, rank)).toContain(`OK equivalence rank ${rank} of 4`);
  });
});

describe("bad input and failures", () => {
  it("ranks whose parameters differ in shape (same size, transposed): every rank raises naming the key and the ranks", async () => {
    const victim = randomInt(0, 4);
    const r = await runJob(["-np", "4", python, `${WORKERS}mismatch.py`, String(victim)]);
    expect(r.code).not.toBe(0);
    const others = [0, 1, 2, 3].filter((q) => q !== victim);
    // Every rank raises at once; the launcher may stop some before they print, but not all.
    const printed = [0, 1, 2, 3].filter((rank) => lines(r, rank).includes("ERROR"));
    expect(printed.length, r.stdout + r.stderr).toBeGreaterThan(0);
    for (const rank of printed)
      expect(lines(r, rank)).toContain(
        `ERROR unicc.mxnet: rank ${rank}: key 0 differs across ranks: shape (16, 20) on ranks [${others.join(", ")}]; shape (20, 16) on ranks [${victim}]`,
      );
  });

  it("a killed rank: every other rank's Trainer step raises UniccError naming it, within the core's bound", async () => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, String(victim)]);
    expectDeathNamed(r, victim, 3, TIMEOUT_S * 1000);
  });
});

const skip = netnsUnavailable();
describe.skipIf(skip !== null)(`2 emulated hosts x 2 ranks${skip ? `: skipped, ${skip}` : ""}`, () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await up({ hosts: 2, tag: `mx${process.pid % 100000}` });
  }, 60_000);
  afterAll(async () => {
    await cluster?.down();
  });
  const on = () => ["-H", cluster.hosts.map((h) => `${h.name}:2`).join(","), "--launch-agent", "ip netns exec {host}", "--rendezvous-addr", cluster.rootAddr];

  it("give one host's results: the same equivalences within 1e-5", async () => {
    const r = await runJob([...on(), python, `${WORKERS}equivalence.py`, String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(diffs(r, 4, () => 1e-5)).toEqual([9, 9, 9, 9]);
  });

  it.each(["the compression option", "UNICC_COMPRESSION=fp16"])("fp16 transfer (%s): pushpull and a Trainer step within half precision's bound, with the rounding visible", async (how) => {
    const env = how.startsWith("UNICC") ? { UNICC_COMPRESSION: "fp16" } : {};
    const r = await runJob([...on(), python, `${WORKERS}compression.py`, String(randomInt(1, 1 << 20))], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 4; rank++) {
      const out = lines(r, rank);
      expect(out).toContain(`OK compression rank ${rank} of 4`);
      const err = (c: string) => Number(new RegExp(`ERR pushpull ${c} (\\S+)`).exec(out)![1]);
      expect(err("none")).toBeLessThan(1e-6);
      expect(err("fp16")).toBeGreaterThan(1e-5); // rounded to 11 bits somewhere on the way
      expect(err("fp16")).toBeLessThan(2 * 4 * 2 ** -11);
    }
    expect(diffs(r, 4, () => 1e-2)).toEqual([1, 1, 1, 1]);
  });
});
