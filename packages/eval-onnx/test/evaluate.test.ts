import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";

import { loadDigits, openDataset, readNpy, slice, type Dataset } from "../src/index.js";
import { CLI, collect, EVAL, exportWith, runJob, TORCH_SETUP } from "./helpers.js";

// One export for the whole file: torch starts slowly.
let dir: string;
beforeAll(() => {
  dir = exportWith(TORCH_SETUP, "export-torch.py");
  // The first 7 labelled samples again, as JSON lines: 4 ranks get 2, 2, 2 and 1 of them.
  const x = readNpy(join(dir, "x1001.npy")).data as Float32Array, y = readNpy(join(dir, "y1001.npy")).data as BigInt64Array;
  const lines = Array.from({ length: 7 }, (_, i) => JSON.stringify({ x: Array.from(x.subarray(i * 784, (i + 1) * 784)), y: Number(y[i]) }));
  writeFileSync(join(dir, "seven.jsonl"), lines.join("\n") + "\n");
});

interface Reference {
  predictions: number[];
  outputs: Float32Array;
  correct: number;
  lossSum: number;
  confusion: number[][];
}

/** One onnxruntime session over the whole set in one run, metrics summed here in float64. */
async function reference(model: string, data: Dataset): Promise<Reference> {
  const session = await ort.InferenceSession.create(model);
  const x = new ort.Tensor("float32", (data.features as Float32Array).slice(), [data.count, ...data.sampleShape]);
  const out = (await session.run({ [session.inputNames[0]]: x }))[session.outputNames[0]];
  const outputs = out.data as Float32Array, c = out.dims[1];
  const ref: Reference = { predictions: [], outputs, correct: 0, lossSum: 0, confusion: Array.from({ length: c }, () => Array(c).fill(0)) };
  for (let i = 0; i < data.count; i++) {
    const row = Array.from(outputs.subarray(i * c, (i + 1) * c));
    const p = row.indexOf(Math.max(...row));
    const y = data.labels![i];
    const max = Math.max(...row);
    ref.lossSum += Math.log(row.reduce((z, v) => z + Math.exp(v - max), 0)) + max - row[y];
    ref.predictions.push(p);
    ref.correct += Number(p === y);
    ref.confusion[y][p]++;
  }
  await session.release();
  return ref;
}

async function runEval(np: number, args: string[]) {
  const r = await runJob(["-np", String(np), "--", "node", EVAL, "--json", ...args], { env: { OMP_NUM_THREADS: "1" } });
  expect(r.code, r.stdout + r.stderr).toBe(0);
  const line = r.byRank.get(0)!.find((l) => l.startsWith("unicc-eval: result "))!;
  return JSON.parse(line.slice("unicc-eval: result ".length));
}

describe("distributed evaluation equals one session over the whole set", () => {
  const SETS = [
    { what: "the digits test set (2000)", args: () => ["--data", "digits:test"], data: () => loadDigits("test") },
    {
      what: "1001 labelled .npy samples (no rank count divides it)",
      args: () => ["--data", join(dir, "x1001.npy"), "--labels", join(dir, "y1001.npy"), "--batch", "50"],
      data: () => openDataset(join(dir, "x1001.npy"), join(dir, "y1001.npy")),
    },
    {
      what: "7 samples as JSON lines",
      args: () => ["--data", join(dir, "seven.jsonl")],
      data: () => slice(openDataset(join(dir, "x1001.npy"), join(dir, "y1001.npy")), 0, 7),
    },
  ];
  for (const set of SETS) {
    it(`${set.what} on 1, 2 and 4 ranks: metrics, predictions and outputs`, async () => {
      const model = join(dir, "mlp.onnx");
      const ref = await reference(model, set.data());
      for (const np of [1, 2, 4]) {
        const preds = join(dir, `p${np}.npy`), outs = join(dir, `o${np}.npy`);
        const r = await runEval(np, ["--model", model, ...set.args(), "--predictions", preds, "--outputs", outs]);
        expect(r.size).toBe(np);
        expect(r.count).toBe(ref.predictions.length);
        expect(r.metrics.correct).toBe(ref.correct);
        expect(r.metrics.confusion).toEqual(ref.confusion);
        expect(r.metrics.lossSum).toBeCloseTo(ref.lossSum, 6);
        expect(Array.from(readNpy(preds).data as Int32Array)).toEqual(ref.predictions);
        expect(readNpy(outs).data).toEqual(ref.outputs);
      }
    });
  }

  it("1000 classes on 2 ranks: the whole confusion matrix, counted by default, arrives in rank 0's 2 MB --json line", async () => {
    const [x, y] = [join(dir, "x1001.npy"), join(dir, "y1001-1000.npy")];
    const ref = await reference(join(dir, "wide.onnx"), openDataset(x, y));
    const r = await runEval(2, ["--model", join(dir, "wide.onnx"), "--data", x, "--labels", y]);
    expect(r.classes).toBe(1000);
    expect(r.metrics.correct).toBe(ref.correct);
    expect(r.metrics.confusion).toEqual(ref.confusion);
  });

  it("the digits are examples/digits.py's, in its order", () => {
    const fromPython = readNpy(join(dir, "digits-test-y.npy")).data as BigInt64Array;
    expect(Array.from(loadDigits("test").labels!)).toEqual(Array.from(fromPython, Number));
  });

  it("torch's export round-trips: onnxruntime's outputs equal torch's forward within 1e-5", async () => {
    const session = await ort.InferenceSession.create(join(dir, "mlp.onnx"));
    const x = readNpy(join(dir, "roundtrip-x.npy")), y = readNpy(join(dir, "roundtrip-y.npy"));
    const out = (await session.run({ x: new ort.Tensor("float32", x.data as Float32Array, x.shape) })).logits;
    expect(out.dims).toEqual(y.shape);
    const got = out.data as Float32Array, want = y.data as Float32Array;
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-5);
  });
});

describe("data that does not fit the model: a clear error naming rank, input and what to do", () => {
  const CASES = [
    { what: "dtype", data: "x-f64.npy", extra: [], want: /rank \d: .*mlp\.onnx does not fit .*x-f64\.npy: input 'x' takes float32, the data is float64/ },
    { what: "shape", data: "x-wide.npy", extra: [], want: /input 'x' has shape \[batch, 784\], a sample of the data has shape \[785\]: axis 1 must be 784, not 785/ },
    { what: "name", data: "x1001.npy", extra: ["--input", "pixels"], want: /it has no input 'pixels' \(its inputs: 'x'\)/ },
  ];
  for (const c of CASES) {
    it(`wrong ${c.what}`, async () => {
      const r = await runJob(["-np", "2", "--", "node", EVAL, "--model", join(dir, "mlp.onnx"), "--data", join(dir, c.data), ...c.extra]);
      expect(r.code).toBe(1);
      expect(r.stdout + r.stderr).toMatch(c.want);
      expect(r.stderr).toMatch(/unicc: rank \d \(host [^,]+, pid \d+\) exited with code 1 first/);
    });
  }
});

/** The pid of rank `rank` among the launcher's children (its UNICC_RANK). */
function rankPid(launcher: number, rank: number): number | undefined {
  const children = readFileSync(`/proc/${launcher}/task/${launcher}/children`, "utf8").split(" ").filter(Boolean).map(Number);
  return children.find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").includes(`UNICC_RANK=${rank}`);
    } catch {
      return false;
    }
  });
}

const GRACE_S = 2;

it("a rank killed during evaluation: the job ends naming it, within the bound", async () => {
  const victim = 2;
  // The wide model one sample at a time: a few seconds of inference per rank, so the kill lands in it.
  const child = spawn(process.execPath, [CLI, "run", "-np", "4", "--grace", String(GRACE_S), "--", "node", EVAL,
    "--model", join(dir, "slow.onnx"), "--data", "digits", "--batch", "1"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OMP_NUM_THREADS: "1" } });
  let killedAt = 0, pid: number | undefined;
  child.stdout!.on("data", (d: Buffer) => {
    // Rank 0's first progress line: every rank is inside its inference loop.
    if (killedAt || !/^\[0\] unicc-eval: rank 0 \d+\/\d+/m.test(String(d))) return;
    pid = rankPid(child.pid!, victim);
    killedAt = Date.now();
    process.kill(pid!, "SIGKILL");
  });
  const r = await collect([child], { timeoutMs: 60_000 });
  const endedAfterMs = Date.now() - killedAt;
  expect(killedAt, `never saw progress:\n${r.stdout}\n${r.stderr}`).toBeGreaterThan(0);
  expect(r.code).not.toBe(0);
  expect(r.stdout).not.toMatch(/unicc-eval: \d+ samples on/); // it did not finish
  expect(r.stderr).toMatch(new RegExp(`unicc: rank ${victim} \\(host [^,]+, pid ${pid}\\) was killed by SIGKILL first`));
  expect(endedAfterMs).toBeLessThan((GRACE_S + 5) * 1000);
});
