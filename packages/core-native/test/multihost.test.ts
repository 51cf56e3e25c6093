import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";
import { runJob, WORKERS } from "./run-job.js";

const SIZES = [0, 1, 7, 1_000_003];

// Same worker as the one-host tests: each rank checks its share against its own reference and
// all ranks must agree on every digest.
function expectCorrect(r: Awaited<ReturnType<typeof runJob>>, np: number, algorithm: string) {
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

const worker = ["node", `${WORKERS}collectives.mjs`, SIZES.join(",")];

describe("ranks on distinct host identities over loopback (forces TCP between hosts)", () => {
  it("2 hosts x 2 ranks: shared memory inside, TCP across (hierarchical)", async () => {
    const r = await runJob(["-H", "a:2,b:2", "--launch-agent", "env", ...worker]);
    expectCorrect(r, 4, "hierarchical");
  });

  it("2 hosts x 2 ranks with UNICC_HIERARCHICAL=0: one flat TCP ring", async () => {
    const r = await runJob(["-H", "a:2,b:2", "--launch-agent", "env", ...worker], { env: { UNICC_HIERARCHICAL: "0" } });
    expectCorrect(r, 4, "ring");
  });

  it("hosts with different rank counts (1 + 2): flat TCP ring", async () => {
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
      "-H", hosts, "--launch-agent", "ip netns exec {host}", "--rendezvous-addr", cluster.rootAddr,
      "--network-interface", "eth0", ...worker,
    ]);
    expectCorrect(r, 4, "hierarchical");
  });

  it("a host whose link is cut: the ranks on the other host fail within the bound, naming one on it", async () => {
    const timeoutS = 5;
    const hosts = cluster.hosts.map((h) => `${h.name}:2`).join(",");
    const r = await runJob(
      ["-H", hosts, "--launch-agent", "ip netns exec {host}", "--rendezvous-addr", cluster.rootAddr, "--grace", "1",
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
