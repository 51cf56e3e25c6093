// The collectives worker's verdict, for tests that start it through any launcher: each rank
// checks its share against its own reference and all ranks must agree on every digest.
import { expect } from "vitest";

import { WORKERS, type JobResult } from "./run-job.js";

export const SIZES = [0, 1, 7, 1_000_003];

export function expectCorrect(r: Pick<JobResult, "code" | "stderr" | "byRank">, np: number, algorithm: string) {
  expect(r.code, r.stderr).toBe(0);
  expect(r.byRank.size).toBe(np);
  const digests = new Map<string, string>();
  for (const [rank, lines] of r.byRank) {
    const cases = lines.filter((l) => l.startsWith("CASE "));
    expect(cases.length).toBe(4 * 8 * SIZES.length);
    for (const c of cases) {
      const [, name, status, digest] = c.split(" ");
      expect(status).toBe("ok");
      if (!digests.has(name)) digests.set(name, digest);
      expect(digest, `${name} on rank ${rank}`).toBe(digests.get(name));
    }
    expect(lines).toContain(`DONE rank ${rank} of ${np} via ${algorithm}`);
  }
}

export const worker = ["node", `${WORKERS}collectives.mjs`, SIZES.join(",")];
