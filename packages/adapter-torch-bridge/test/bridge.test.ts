import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from "vitest";

import { netnsUnavailable, up, type Cluster } from "../../../tests/cluster/cluster.js";

import { bridgeLeftovers, lines, python39, runJob, venvPython, WORKERS } from "./helpers.js";
import { expectBridgeDeathNamed, expectDeathNamed } from "../../core-native/test/death-check.js";

const TIMEOUT_S = 10;
const netnsSkip = netnsUnavailable();
let python: string;
let hasCuda = false;
let before: Set<string>;

beforeAll(() => {
  python = venvPython();
  hasCuda = execFileSync(python, ["-c", "import torch; print(torch.cuda.is_available())"], { encoding: "utf8" }).trim() === "True";
}, 600_000);

// Whatever else runs on the machine, nothing of the bridge's may outlive a job of ours.
beforeEach(() => {
  before = new Set(bridgeLeftovers());
});
afterEach(() => {
  expect(bridgeLeftovers().filter((f) => !before.has(f))).toEqual([]);
});

describe("collectives through the bridge", () => {
  it("allreduce (sum, max, min, average), broadcast and allgather on 4 ranks match references, several dtypes, many in flight; broadcast_parameters and broadcast_optimizer_state", async () => {
    const seed = randomInt(1, 1 << 20);
    const r = await runJob(["-np", "4", python, `${WORKERS}collectives.py`, String(seed)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 4; rank++) expect(lines(r, rank)).toMatch(new RegExp(`OK \\d+ checks rank ${rank} of 4 over the ring`));
  });
});

// These check the bridge's own paths, which small tensors of a one-host world would skip (they
// run on the client lane, tested below).
const ONLY_THE_BRIDGE = { UNICC_BRIDGE_LANE: "0" };

describe("each way a tensor reaches the core", () => {
  const paths = async (launch: string[], env: Record<string, string>, ranks: number, okLine: string, extra: string[] = []) => {
    const r = await runJob([...launch, python, `${WORKERS}paths.py`, String(randomInt(1, 1 << 20)), ...extra], { env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < ranks; rank++) expect(lines(r, rank)).toContain(`OK ${okLine.replace("RANK", String(rank))}`);
  };
  it("shared storages in place (no slab), views at an offset, plain tensors where they lie by cross-memory attach (no slab: averages over many pieces, integers, an odd address, a broadcast), copied non-contiguous / float16 tensors (one size in several shapes, 0-dim) on 3 ranks match references; oversize, misaligned, unmapped, on-disk and absent memory are refused; a tensor dist.all_reduce sees again moves to shared memory and is then reduced in place, memory torch only wraps (a slab) stays", async () => {
    await paths(["-np", "3"], ONLY_THE_BRIDGE, 3, "29 checks rank RANK of 3, attach True");
  });
  it("the same where the bridge may not attach (UNICC_BRIDGE_ATTACH=0): plain tensors are copied through slabs, with the same results", async () => {
    await paths(["-np", "3"], { ...ONLY_THE_BRIDGE, UNICC_BRIDGE_ATTACH: "0" }, 3, "28 checks rank RANK of 3, attach False");
  });
  describe.skipIf(netnsSkip !== null)(`on 2 emulated hosts x 2 ranks${netnsSkip ? `: skipped, ${netnsSkip}` : ""}`, () => {
    let cluster: Cluster;
    beforeAll(async () => {
      cluster = await up({ hosts: 2, tag: `pt${process.pid % 100000}` });
    }, 60_000);
    afterAll(async () => {
      await cluster?.down();
    });
    it("plain tensors are read whole by the core's thread, reduced across the hosts' TCP rings, written back; same results", async () => {
      const launch = ["-H", cluster.hosts.map((h) => `${h.name}:2`).join(","), "--launch-agent", cluster.launchAgent, "--rendezvous-addr", cluster.rootAddr];
      await paths(launch, { GLOO_SOCKET_IFNAME: "eth0" }, 4, "29 checks rank RANK of 4, attach True", [cluster.hosts[0].addr]);
    });
  });
});

describe("the client lane (small requests of a one-host world run in the Python process)", () => {
  it.each([2, 4])("%i ranks: every dtype and op from 1 element to the lane's limit, broadcasts from every root, a barrier match references; a small request's handle is finished on return; wrong ops and dtypes are named; one element more goes to the bridge; large requests through the bridge beside small ones; bad addresses, unaligned and oversize requests, unknown codes and a root out of range refused, the lane usable after; ranks calling different collectives all fail, naming the ranks", async (np) => {
    const r = await runJob(["-np", String(np), python, `${WORKERS}lane.py`, String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < np; rank++) expect(lines(r, rank)).toContain(`OK ${91 + np} checks rank ${rank} of ${np} on the client lane`);
  });
});

describe("mappings in use stay mapped", () => {
  it("8 threads reduce 48 shared storages through a descriptor cache of 4 (evictions all the time) on 2 ranks: no request names an unmapped buffer, values match references", async () => {
    const r = await runJob(["-np", "2", python, `${WORKERS}pins.py`, String(randomInt(1, 1 << 20))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 2; rank++) expect(lines(r, rank)).toContain(`OK pins rank ${rank} of 2: 48 tensors through a cache of 4`);
  });
});

describe("the command ring", () => {
  it("entries naming an unmapped buffer, a span beyond it, a misaligned offset, an unknown dtype/op/collective, a root out of range, a named broadcast, bytes a pending request uses, and requests on the client's own memory (buffer 0) that are named, an allgather, absent, too long or wrapping are answered with errors naming the rank, and the ring stays usable (sum against a reference) on 2 ranks", async () => {
    const r = await runJob(["-np", "2", python, `${WORKERS}ring.py`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 2; rank++) expect(lines(r, rank)).toContain(`OK ring 16 checks rank ${rank} of 2`);
  });

  it("a submission counter that jumps ahead: the bridge drops its client, whose wait raises BridgeError at once; the peer's collective fails", async () => {
    const r = await runJob(["-np", "2", python, `${WORKERS}ring.py`, "corrupt"], { env: { UNICC_TIMEOUT_S: String(TIMEOUT_S) } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(lines(r, 0)).toContain("OK corrupt rank 0");
    expect(lines(r, 1)).toContain("OK peer saw rank 0 go");
  });

  it("UNICC_BRIDGE_RING=0 keeps requests on the socket: the collectives of 4 ranks still match references", async () => {
    const r = await runJob(["-np", "4", python, `${WORKERS}collectives.py`, String(randomInt(1, 1 << 20))], { env: { UNICC_BRIDGE_RING: "0" } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 4; rank++) expect(lines(r, rank)).toMatch(new RegExp(`OK \\d+ checks rank ${rank} of 4 over the socket`));
  });
});

describe("the client package alone (what the MXNet and Caffe adapters use)", () => {
  const py39 = python39();
  it.skipIf(!py39)("runs on Python 3.9 without torch or numpy: allreduce, broadcast, allgather of 4 dtypes on 3 ranks", async () => {
    const CLIENT = fileURLToPath(new URL("../../core-native/python", import.meta.url));
    const r = await runJob(["-np", "3", py39!, `${WORKERS}client_only.py`, String(randomInt(1, 1 << 20))], { env: { PYTHONPATH: CLIENT } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 3; rank++) expect(lines(r, rank)).toContain(`OK 12 checks rank ${rank} of 3 python 3.9`);
  });
});

describe("CUDA tensors, staged through host memory", () => {
  it("every collective on a device tensor equals the same on CPU (where torch sees a GPU)", async (ctx) => {
    if (!hasCuda) return ctx.skip();
    const r = await runJob(["-np", "2", python, `${WORKERS}cuda_staging.py`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (let rank = 0; rank < 2; rank++) expect(lines(r, rank)).toContain(`OK cuda rank ${rank} of 2`);
  });
});

describe("one step on 4 ranks with batch b equals one step on 1 process with batch 4b", () => {
  for (const mode of ["opt+hook", "pg"]) {
    it(mode === "pg" ? 'dist.init_process_group(backend="unicc") + unchanged DDP (and its fp16 and PowerSGD hooks)' : "DistributedOptimizer, and DDP with uc.ddp_comm_hook", async () => {
      const r = await runJob(["-np", "4", python, `${WORKERS}equivalence.py`, mode, String(randomInt(1, 1 << 20))]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      for (let rank = 0; rank < 4; rank++) {
        expect(lines(r, rank)).toContain(`OK ${mode}`);
        for (const m of lines(r, rank).matchAll(/DIFF (.+) (\S+)$/gm))
          expect(Number(m[2]), m[1]).toBeLessThan(m[1].includes("fp16") ? 1e-2 : 1e-5);
      }
    });
  }
});

describe("failures raise in Python, naming what died, within the bound", () => {
  it("a killed peer: every other rank raises UniccError naming it", async () => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, "peer", String(victim)]);
    expectDeathNamed(r, victim, 3, TIMEOUT_S * 1000);
  });

  it.each([
    ["raise", "its excepthook is Python's"],
    ["raise-hooked", "it installed an excepthook of its own after init"],
  ])("a rank that raises (%s: %s): it leaves at once (no collective close that waits on its peers), the launcher names its exit, the others raise naming it", async (mode) => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, mode, String(victim)]);
    expectDeathNamed(r, victim, 3, TIMEOUT_S * 1000);
    expect(r.stderr).toContain(`[${victim}] ValueError: rank ${victim} gives up`);
    expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(host [^,]+, pid \\d+\\) exited with code 1 first`));
    if (mode === "raise-hooked") expect(lines(r, victim)).toContain("OWN HOOK ValueError");
  });

  it("a killed bridge: its rank raises BridgeError naming the bridge (also between requests on the client lane), the others name that rank", async () => {
    const victim = randomInt(0, 3);
    const r = await runJob(["-np", "3", "--timeout", String(TIMEOUT_S), python, `${WORKERS}faults.py`, "bridge", String(victim)]);
    expectBridgeDeathNamed(r, victim, 3, TIMEOUT_S * 1000, `rank ${victim}: the bridge process (pid BRIDGE) was killed by signal 9`);
  });
});

describe("a bridge that is alive but silent", () => {
  it("(stopped with SIGSTOP) makes a wait give up after UNICC_TIMEOUT_S + 10 s, naming the bridge, and the job still ends", async () => {
    const timeoutS = 1;
    const r = await runJob(["-np", "1", "--timeout", String(timeoutS), python, `${WORKERS}faults.py`, "stall", "0"]);
    expect(r.code).not.toBe(0);
    const out = lines(r, 0);
    const died = Number(/DYING (\d+)/.exec(out)![1]);
    const m = /ERROR (\d+) BridgeError: (.*)/.exec(out);
    expect(m, out + r.stderr).not.toBeNull();
    expect(m![2]).toMatch(/rank 0: the bridge \(pid \d+\) gave no answer for \d+ s while allreduce was pending/);
    expect(Number(m![1]) - died).toBeLessThan((timeoutS + 10 + 2) * 1000);
  });
});

describe("the bridge's door", () => {
  it("with UNICC_JOB_TOKEN set, refuses clients without the proof, garbage and oversize frames, then admits the right client and leaves no socket; an admitted client mapping buffer 0 is dropped, and the bridge says why", async () => {
    const r = await runJob(["-np", "1", python, `${WORKERS}door.py`], { env: { UNICC_JOB_TOKEN: randomBytes(16).toString("hex") } });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = lines(r, 0);
    for (const what of ["NO-TOKEN", "WRONG-TOKEN"]) expect(out).toMatch(new RegExp(`${what} .*refused the connection: wrong or missing proof of UNICC_JOB_TOKEN.* None`));
    expect(out).toMatch(/OVERSIZE .*bad message from the client: frame of \d+ bytes exceeds/);
    expect(out).toMatch(/BIG .*bad message from the client: message exceeds the bridge's 65536-byte limit/);
    expect(out).toMatch(/GARBAGE .*bad message from the client: message is not JSON/);
    expect(out).toMatch(/SKIP-AUTH .*expected the auth message, got 'op'/);
    expect(out).toMatch(/RIGHT-TOKEN \{'t': 'welcome', 'rank': 0, 'size': 1/);
    expect(out).toContain("EXIT 0 SOCKET-LEFT False DIR-LEFT False");
    // Buffer 0 is the ring's client memory: a slab numbered 0 would be shadowed there.
    for (const what of ["MAP", "MAPFD"]) {
      expect(out).toMatch(new RegExp(`${what}-ZERO .*bad message from the client: ${what.toLowerCase()} needs an integer id from 1 .* None EXIT 1`));
      // The bridge's own line says why it dropped the client (not that the client went away).
      expect(r.stderr).toMatch(new RegExp(`the bridge of rank 0: bad message from the client: ${what.toLowerCase()} needs .* \\(the client was dropped\\)`));
    }
    expect(r.stderr).not.toContain("its client closed the connection");
  });
});

describe("examples/torch-digits", () => {
  it("4 ranks (DDP on the unicc backend) reach the test accuracy of 1 rank within 1 point", async () => {
    const TRAIN = fileURLToPath(new URL("../../../examples/torch-digits/train.py", import.meta.url));
    const accuracy = async (np: number, mode: string) => {
      const r = await runJob(["-np", String(np), python, TRAIN, "--epochs", "2", "--mode", mode]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(lines(r, 0)).toMatch(/epoch 2: [\d.]+ s, \d+ images\/s, loss [\d.]+, test accuracy/);
      return Number(/FINAL accuracy ([\d.]+)/.exec(lines(r, 0))![1]);
    };
    const one = await accuracy(1, "optimizer");
    const four = await accuracy(4, "ddp");
    expect(one).toBeGreaterThan(0.85);
    expect(Math.abs(four - one)).toBeLessThanOrEqual(0.01);
  });
});
