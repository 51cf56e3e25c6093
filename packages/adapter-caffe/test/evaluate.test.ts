// unicc.caffe.evaluate: real Caffe in the bullseye root on 1, 2 and 4 ranks through `unicc run --bridge`;
// the totals must equal one plain pycaffe process forwarding the whole set (computed by rank 0 of the worker).
import { randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";

import { caffeJobs, IN_ROOT, inRoot, lines, runJob, UNICC_CAFFE, WORKERS } from "./helpers.js";

const TIMEOUT_S = 10;
const job = caffeJobs();

const TOTALS = /^(?:TOTALS|REF) (\d+) (\d+) (\w+) (\S+)$/m;

function totals(text: string, tag: "TOTALS" | "REF"): { n: number; correct: number; confusion: string; loss: number } {
  const m = new RegExp(`^${tag} (\\d+) (\\d+) (\\w+) (\\S+)$`, "m").exec(text);
  expect(m, text).not.toBeNull();
  return { n: Number(m![1]), correct: Number(m![2]), confusion: m![3], loss: Number(m![4]) };
}

describe("unicc.caffe.evaluate: each rank its contiguous part, totals summed across ranks", () => {
  // 103 rows: not a multiple of 4 ranks nor of the batch of 4, so parts differ in size and last batches are padded.
  // Seed 85 draws a sample whose loss (103.5) is over Caffe's per-sample cap of -log(FLT_MIN) = 87.3.
  const cases: [np: number, rows: number, seed?: number][] = [[1, 103], [2, 103], [4, 103], [4, 64], [2, 103, 85]];
  for (const [np, rows, seed] of cases) {
    const what = seed ? `, seed ${seed} (a sample's loss over Caffe's cap)` : "";
    it(`${np} rank(s), ${rows} rows, batch 4${what}: samples, correct count and confusion matrix exact, loss sum to 1e-6 (float32 forward)`, async () => {
      const r = await runJob(["-np", String(np), "--bridge", "--timeout", String(TIMEOUT_S), "--", IN_ROOT,
        "python3", `${WORKERS}evaluate.py`, String(seed ?? randomInt(1, 1 << 20)), job.dir, "4", String(rows)], { env: job.env });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const ref = totals(lines(r, 0), "REF");
      expect(ref.n).toBe(rows);
      for (let rank = 0; rank < np; rank++) {
        const got = totals(lines(r, rank), "TOTALS");
        expect({ n: got.n, correct: got.correct, confusion: got.confusion }).toEqual({ n: ref.n, correct: ref.correct, confusion: ref.confusion });
        expect(Math.abs(got.loss - ref.loss) / ref.loss).toBeLessThan(1e-6);
      }
    });
  }

  it("a rank with fewer labels than rows fails with an error naming it, and the job ends (no hang)", async () => {
    const r = await runJob(["-np", "2", "--bridge", "--timeout", String(TIMEOUT_S), "--", IN_ROOT,
      "python3", `${WORKERS}evaluate.py`, "5", job.dir, "4", "10", "short"], { env: job.env });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain("unicc.caffe: evaluate on rank 1: 10 rows of x but 9 labels");
    // Rank 1 leaves at once (it does not close its world with peers that wait on it), so its exit is the cause.
    expect(r.stderr).toMatch(/unicc: rank 1 \(host [^,]+, pid \d+\) exited with code 1 first/);
    expect(r.ms).toBeLessThan(TIMEOUT_S * 1000);
  });

  it("`unicc-caffe test` on 3 ranks (scores: the SoftmaxWithLoss bottom) logs one plain pycaffe forward's totals, from rank 0 only", async () => {
    const d = job.dir;
    const ref = /^REF (\d+) (\d+) (\S+)$/m.exec(inRoot(job.env, ["python3", "eval_files.py", String(randomInt(1, 1 << 20)), d, "103"]));
    expect(ref).not.toBeNull();
    const r = await runJob(["-np", "3", "--bridge", "--timeout", String(TIMEOUT_S), "--", IN_ROOT, UNICC_CAFFE, "test", "--model", `${d}/eval-net.prototxt`,
      "--weights", `${d}/eval.caffemodel`, "--data", `${d}/eval-x.npy`, "--labels", `${d}/eval-y.npy`], { env: job.env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const log = (rank: number) => r.stderr.split("\n").filter((l) => l.startsWith(`[${rank}] `)).join("\n");
    expect(log(0)).toContain(`caffe.cpp] 103 samples on 3 rank(s), correct = ${ref![2]}`);
    const loss = Number(/caffe\.cpp\] Loss: (\S+)/.exec(log(0))?.[1]);
    expect(Math.abs(loss - Number(ref![3])) / Number(ref![3])).toBeLessThan(1e-6);
    for (const rank of [1, 2]) expect(log(rank)).not.toMatch(/samples on|accuracy =|Loss:/);
  });
});
