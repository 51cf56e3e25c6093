import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import * as ort from "onnxruntime-node";
import { expect, it } from "vitest";

import { readNpy } from "../src/index.js";
import { exportWith, FIXTURES, KERAS_SETUP, MXNET_SETUP, venvPython } from "./helpers.js";

/** onnxruntime's outputs on the fixture's inputs against the framework's own forward pass. */
async function maxDifference(dir: string): Promise<number> {
  const session = await ort.InferenceSession.create(join(dir, "model.onnx"));
  const x = readNpy(join(dir, "roundtrip-x.npy")), y = readNpy(join(dir, "roundtrip-y.npy"));
  const out = (await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x.data as Float32Array, x.shape) }))[session.outputNames[0]];
  expect(out.dims).toEqual(y.shape);
  const got = out.data as Float32Array, want = y.data as Float32Array;
  return Math.max(...got.map((v, i) => Math.abs(v - want[i])));
}

// torch's export round-trips in evaluate.test.ts, beside the model the evaluation tests use.
it("MXNet's export (mx.onnx.export_model) round-trips within 1e-5", async () => {
  expect(await maxDifference(exportWith(MXNET_SETUP, "export-mxnet.py"))).toBeLessThan(1e-5);
});

it("Keras's export (model.export(format='onnx')) round-trips within 1e-5", async () => {
  expect(await maxDifference(exportWith(KERAS_SETUP, "export-keras.py"))).toBeLessThan(1e-5);
});

it("tfjs's model, through its saved artifacts, Keras and Keras's export, round-trips within 1e-5", async () => {
  const dir = mkdtempSync(join(tmpdir(), "unicc-eval-"));
  execFileSync(process.execPath, [join(FIXTURES, "export-tfjs.mjs"), dir], { stdio: ["ignore", "ignore", "pipe"] });
  execFileSync(venvPython(KERAS_SETUP), ["-m", "unicc.tensorflow.tfjs_onnx", join(dir, "tfjs"), join(dir, "model.onnx")], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: "2", TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "1" },
  });
  expect(await maxDifference(dir)).toBeLessThan(1e-5);
});
