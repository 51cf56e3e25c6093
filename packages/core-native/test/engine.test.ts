import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";
import { runJob, WORKERS } from "./run-job.js";

const worker = (...args: string[]) => ["node", `${WORKERS}engine.mjs`, ...args];
const TWO_HOSTS = ["-H", "a:2,b:2", "--launch-agent", "env"];

function lines(r: Awaited<ReturnType<typeof runJob>>, prefix: string): string[] {
  return [...r.byRank.values()].flat().filter((l) => l.startsWith(prefix));
}

describe("engine: named requests, negotiated without a coordinator", () => {
  // Each case: tensors of four dtypes, submitted in a different shuffled order on every rank with
  // random pauses, checked exactly against a reference every rank computes itself.
  const layouts: [string, string[], NodeJS.ProcessEnv][] = [
    ["one host, 4 ranks (shared memory)", ["-np", "4"], {}],
    ["2 hosts x 2 ranks (hierarchical)", TWO_HOSTS, {}],
    ["2 hosts x 2 ranks, flat ring (UNICC_HIERARCHICAL=0)", TWO_HOSTS, { UNICC_HIERARCHICAL: "0" }],
    ["2 hosts x 2 ranks, no fusion", TWO_HOSTS, { UNICC_FUSION_BYTES: "0" }],
    ["2 hosts x 2 ranks, flat ring over 3 TCP streams per neighbour", TWO_HOSTS, { UNICC_STREAMS: "3", UNICC_HIERARCHICAL: "0" }],
    ["2 hosts x 2 ranks, one TCP stream", TWO_HOSTS, { UNICC_STREAMS: "1" }],
    ["3 hosts x 1 rank (each batch one schedule, no shared memory)", ["-H", "a:1,b:1,c:1", "--launch-agent", "env"], {}],
  ];
  for (const [label, hosts, env] of layouts) {
    it(`out-of-order submission, ${label}`, async () => {
      const r = await runJob([...hosts, ...worker("mixed")], { env });
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(lines(r, "OK mixed")).toHaveLength(r.byRank.size);
    });
  }

  it("UNICC_HOST_SHARES=3,1: every host's first rank carries three quarters of each allreduce across hosts; results exact", async () => {
    const r = await runJob([...TWO_HOSTS, ...worker("mixed")], { env: { UNICC_HOST_SHARES: "3,1" } });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const ok = lines(r, "OK mixed");
    expect(ok).toHaveLength(4);
    for (const l of ok) expect(l).toContain("local ranks' shares 75/25 % (fixed)");
  });

  it("UNICC_HOST_SHARES with a weight count other than the ranks per host fails on every rank, saying so", async () => {
    const r = await runJob([...TWO_HOSTS, ...worker("mixed")], { env: { UNICC_HOST_SHARES: "1,1,1" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("UNICC_HOST_SHARES gives 3 shares, but every host runs 2 ranks");
  });

  it("the blocking many-names call gives the same results (2 hosts x 2 ranks)", async () => {
    const r = await runJob([...TWO_HOSTS, ...worker("sync")]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(lines(r, "OK sync")).toHaveLength(4);
  });

  it("a name submitted with different lengths fails on every rank, naming it and the ranks; the engine goes on", async () => {
    const r = await runJob(["-np", "3", ...worker("mismatch")]);
    expect(r.code, r.stderr).toBe(0);
    const errors = lines(r, "MISMATCH");
    expect(errors).toHaveLength(3);
    for (const e of errors) {
      expect(e).toContain("'w' was submitted differently");
      expect(e).toContain("rank 1: float32[999]");
      expect(e).toContain("rank 0: float32[1000]");
      expect(e).toContain("rank 2: float32[1000]");
    }
    expect(lines(r, "AFTER")).toEqual(["AFTER 6", "AFTER 6", "AFTER 6"]);
    const changed = lines(r, "CHANGED");
    expect(changed).toHaveLength(3);
    for (const e of changed) expect(e).toMatch(/'after' was submitted differently.*agreed earlier, float32\[10\].*rank 0: float32\[11\]/);
    expect(lines(r, "RESIZED")).toEqual(["RESIZED 12 6", "RESIZED 12 6", "RESIZED 12 6"]);
  });

  it("stall report: every rank names the tensor and the rank that has not submitted it", async () => {
    const r = await runJob(["-np", "3", ...worker("stall")], { env: { UNICC_STALL_WARN_S: "1" } });
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1]) {
      expect(r.stderr).toContain(`[${rank}] unicc: rank ${rank}: stall`);
      expect(r.stderr).toContain(`[${rank}]   'late' missing on ranks 2`);
    }
    expect(lines(r, "STALL done")).toEqual(["STALL done 3", "STALL done 3", "STALL done 3"]);
  });

  it("close() with a name only one rank submitted: the request fails, naming it, and every rank leaves", async () => {
    const r = await runJob(["-np", "3", ...worker("orphan")], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.byRank.get(0)).toContainEqual(expect.stringMatching(/^ORPHAN 'only-on-0' on rank 0: ranks? [\d, ]+ closed (its world|their worlds) without submitting it$/));
  });

  it("a rank that closes while a peer waits on a name it never submitted: the peer's request fails at once, naming it (no wait for a timeout)", async () => {
    // Ranks 1 and 2 close at once; 300 ms later rank 0 submits a name neither will (before: it waited for ever).
    const r = await runJob(["-np", "3", "--timeout", "60", ...worker("closing")], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(0);
    const line = r.byRank.get(0)?.find((l) => l.startsWith("CLOSING"));
    expect(line, r.stdout + r.stderr).toMatch(/^CLOSING after \d+ ms: 'never-on-last' on rank 0: ranks 1, 2 closed their worlds without submitting it$/);
  });

  it("the tuner settles on the same stream count and fusion size on every rank", async () => {
    const r = await runJob([...TWO_HOSTS, ...worker("tune")], { env: { UNICC_AUTOTUNE: "1", UNICC_HIERARCHICAL: "0" } });
    expect(r.code, r.stderr).toBe(0);
    const tuned = lines(r, "TUNED").map((l) => l.replace(/^TUNED /, ""));
    expect(tuned).toHaveLength(4);
    expect(tuned[0]).toMatch(/^\d streams?, fusion \d+ KiB \(tuned\)$/);
    expect(new Set(tuned).size).toBe(1);
    // Rank 0 logs every candidate it measured: stream counts first, then fusion sizes.
    const chose = /tuner chose (\d streams?, fusion \d+ KiB) \(measured (.*)\)/.exec(r.stderr);
    expect(chose, r.stderr).not.toBeNull();
    expect(tuned[0]).toBe(`${chose![1]} (tuned)`);
    for (const c of ["4 streams, fusion 65536 KiB", "1 stream, fusion 65536 KiB", "2 streams, fusion 65536 KiB", "fusion 4096 KiB", "fusion 16384 KiB"])
      expect(chose![2]).toContain(c);
  });

  it("a model of one tensor: the tuner warms up for 16 steps, then measures its 3 stream counts over 16 each; no fusion size, which cannot change one tensor's allreduce", async () => {
    const r = await runJob(["-H", "a:1,b:1", "--launch-agent", "env", ...worker("tune-one")], { env: { UNICC_AUTOTUNE: "1" } });
    expect(r.code, r.stderr).toBe(0);
    const tuned = lines(r, "TUNED ").map((l) => l.replace(/^TUNED /, ""));
    expect(tuned).toHaveLength(2);
    expect(new Set(tuned).size, tuned.join(" | ")).toBe(1);
    expect(tuned[0]).toMatch(/\(tuned\)$/);
    const measured = /tuner chose .* \(measured (.*)\)/.exec(r.stderr);
    expect(measured, r.stderr).not.toBeNull();
    expect(measured![1]).toMatch(/^4 streams, fusion 65536 KiB: \d+ MB\/s; 1 stream, fusion 65536 KiB: \d+ MB\/s; 2 streams, fusion 65536 KiB: \d+ MB\/s$/);
    // Each window closes after 16 batches (here steps): a first one left out (warming up), then
    // one per candidate; a round more for each report.
    for (const l of lines(r, "TUNING STEPS")) {
      const steps = Number(l.split(" ").pop());
      expect(steps, l).toBeGreaterThanOrEqual(4 * 16);
      expect(steps, l).toBeLessThanOrEqual(4 * 16 + 4);
    }
  });
});

describe("engine: 16-bit transfer with scaling", () => {
  // Half precision keeps 11 significant bits, bfloat16 8; each value is rounded at most twice.
  const bound = { fp16: 2 * 2 ** -11, bf16: 2 * 2 ** -8 };
  const cases = [["fp16", "1", "a:2,b:2"], ["bf16", "1", "a:2,b:2"], ["fp16", "0", "a:2,b:2"], ["fp16", "1", "a:1,b:1"]] as const;
  for (const [compression, hierarchical, hosts] of cases) {
    it(`${compression} across hosts ${hosts} (hierarchical=${hierarchical}): 1e6 and 1e-7 stay within the rounding bound; Inf and NaN propagate`, async () => {
      const r = await runJob(["-H", hosts, "--launch-agent", "env", ...worker("scale", compression)], { env: { UNICC_HIERARCHICAL: hierarchical } });
      expect(r.code, r.stderr).toBe(0);
      const scale = lines(r, "SCALE");
      expect(scale).toHaveLength(2 * r.byRank.size);
      for (const l of scale) {
        const err = Number(l.split(" ").pop());
        expect(err, l).toBeLessThanOrEqual(bound[compression]);
        expect(err, `${l}: no rounding at all means the values did not travel in 16 bits`).toBeGreaterThan(0);
      }
      const n = r.byRank.size;
      expect(new Set(lines(r, "SPECIAL"))).toEqual(new Set([`SPECIAL ${n},Infinity,${2 * n},NaN,${-3 * n},${4 * n}`]));
    });
  }

  it("on one host the values stay exact (shared memory carries float32)", async () => {
    const r = await runJob(["-np", "2", ...worker("scale", "fp16")]);
    expect(r.code, r.stderr).toBe(0);
    for (const l of lines(r, "SCALE")) expect(l).toMatch(/error 0\.000e\+0$/);
  });
});

describe("engine timeline", () => {
  const dir = mkdtempSync(join(tmpdir(), "unicc-timeline-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("16-bit transfer: the trace names the phase compress+allreduce and says how long coding took", async () => {
    const r = await runJob([...TWO_HOSTS, ...worker("scale", "fp16")], { env: { UNICC_TIMELINE: join(dir, "wire.json") } });
    expect(r.code, r.stderr).toBe(0);
    const events = JSON.parse(readFileSync(join(dir, "wire.rank0.json"), "utf8")) as { ph: string; name: string; args?: Record<string, unknown> }[];
    const coded = events.filter((e) => e.name === "compress+allreduce");
    expect(coded.length).toBeGreaterThan(0);
    for (const e of coded) {
      expect(e.args!.wire).toBe("fp16");
      expect(e.args!.batch_compress_ms as number).toBeGreaterThan(0);
    }
  });

  it("writes a Chrome trace per rank with each tensor's negotiate, fuse, allreduce and unpack phases", async () => {
    const r = await runJob(["-np", "2", ...worker("mixed")], { env: { UNICC_TIMELINE: join(dir, "trace.json") } });
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1]) {
      const events = JSON.parse(readFileSync(join(dir, `trace.rank${rank}.json`), "utf8")) as {
        ph: string; name: string; pid: number; tid: number; ts?: number; dur?: number; args?: { name?: string };
      }[];
      const rows = new Map(events.filter((e) => e.ph === "M").map((e) => [e.tid, e.args!.name!]));
      expect(rows.size).toBe(40);
      const phases = new Set(events.filter((e) => e.ph === "X").map((e) => e.name));
      for (const p of ["negotiate", "fuse", "allreduce", "unpack"]) expect(phases).toContain(p);
      for (const e of events.filter((x) => x.ph === "X")) {
        expect(e.pid).toBe(rank);
        expect(rows.has(e.tid)).toBe(true);
        expect(e.dur).toBeGreaterThanOrEqual(0);
      }
    }
  });
});

const skip = netnsUnavailable();
describe.skipIf(skip !== null)(`engine on two emulated hosts (network namespaces, shaped links)${skip ? `: skipped, ${skip}` : ""}`, () => {
  let cluster: Cluster;
  let placement: string[];
  beforeAll(async () => {
    cluster = await up({ hosts: 2, tag: "engine" });
    const hosts = cluster.hosts.map((h) => `${h.name}:2`).join(",");
    placement = ["-H", hosts, "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr];
  });
  afterAll(async () => {
    await cluster?.down();
  });

  it("2 hosts x 2 ranks: out-of-order named tensors, exact, with the tuner switching streams and fusion", async () => {
    const r = await runJob([...placement, ...worker("mixed")], { env: { UNICC_AUTOTUNE: "1" } });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(lines(r, "OK mixed")).toHaveLength(4);
  });

  it("ring balance: a host's rank whose ring is slower (1 TCP stream against 4, per-flow cap) gets a smaller share; results exact", async () => {
    const r = await runJob([...placement, ...worker("balance")]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const settings = lines(r, "BALANCE");
    expect(settings).toHaveLength(4);
    for (const l of settings) {
      const [fast, slow] = /shares (\d+)\/(\d+) % \(balanced\)/.exec(l)!.slice(1).map(Number);
      expect(fast, l).toBeGreaterThanOrEqual(58);
      expect(fast + slow).toBe(100);
    }
  });

  it("2 hosts x 2 ranks: fp16 keeps 1e6 and 1e-7 within the rounding bound", async () => {
    const r = await runJob([...placement, ...worker("scale", "fp16")]);
    expect(r.code, r.stderr).toBe(0);
    for (const l of lines(r, "SCALE")) expect(Number(l.split(" ").pop()), l).toBeLessThanOrEqual(2 * 2 ** -11);
  });
});
