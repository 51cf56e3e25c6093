import { describe, expect, it } from "vitest";

import { runJob, WORKERS } from "./run-job.js";

// Each rank checks its share of every result against its own reference and prints a digest
// of the whole result; here all ranks must agree on every digest and report every case.
function expectAllCasesAgree(byRank: Map<number, string[]>, ranks: number, sizes: number[]) {
  expect([...byRank.keys()].sort((a, b) => a - b)).toEqual([...Array(ranks).keys()]);
  const digests = new Map<string, string>();
  for (const [rank, lines] of byRank) {
    const cases = lines.filter((l) => l.startsWith("CASE "));
    // 4 dtypes x (5 ops + up to 2 broadcast roots + 1 allgather) per size
    const perSize = 4 * (5 + (ranks > 1 ? 2 : 1) + 1);
    expect(cases.length, `rank ${rank} cases`).toBe(perSize * sizes.length);
    for (const c of cases) {
      const [, name, status, digest] = c.split(" ");
      expect(status).toBe("ok");
      if (!digests.has(name)) digests.set(name, digest);
      expect(digest, `${name} on rank ${rank}`).toBe(digests.get(name));
    }
    expect(lines.some((l) => l.startsWith(`DONE rank ${rank} of ${ranks}`))).toBe(true);
  }
}

const SIZES = [0, 1, 7, 1_000_003];
const BIG = [1 << 24];

describe("collectives on one host (shared memory)", () => {
  for (const np of [1, 2, 3, 4]) {
    it(`every op and dtype at ${np} rank(s), sizes ${SIZES.join(", ")}`, async () => {
      const r = await runJob(["-np", String(np), "node", `${WORKERS}collectives.mjs`, SIZES.join(",")]);
      expect(r.code, r.stderr).toBe(0);
      expectAllCasesAgree(r.byRank, np, SIZES);
    });
  }

  // Around the switch from one round to owner rounds (64 KiB: 8192 and 16384 elements of 8 and
  // 4 bytes), with a late rank each time, so that promise calls also finish on the core's thread.
  const AROUND_SMALL = [1, 8192, 8193, 16384, 16385];
  for (const np of [2, 3, 4]) {
    it(`sizes ${AROUND_SMALL.join(", ")} at ${np} ranks, one rank late each time`, async () => {
      const r = await runJob(["-np", String(np), "node", `${WORKERS}collectives.mjs`, AROUND_SMALL.join(","), "3"]);
      expect(r.code, r.stderr).toBe(0);
      expectAllCasesAgree(r.byRank, np, AROUND_SMALL);
    });
  }

  it("8 ranks oversubscribed on this machine's cores", async () => {
    const r = await runJob(["-np", "8", "node", `${WORKERS}collectives.mjs`, SIZES.join(",")], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    expectAllCasesAgree(r.byRank, 8, SIZES);
  }, 310_000);

  for (const np of [2, 4]) {
    it(`2^24 elements at ${np} ranks`, async () => {
      const r = await runJob(["-np", String(np), "node", `${WORKERS}collectives.mjs`, BIG.join(",")], { timeoutMs: 400_000 });
      expect(r.code, r.stderr).toBe(0);
      expectAllCasesAgree(r.byRank, np, BIG);
    }, 410_000);
  }
});
