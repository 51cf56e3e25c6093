// One onnxruntime session on a worker thread: InferenceSession.run() keeps the JavaScript thread
// busy for the whole inference although it returns a promise, so it runs here, and the rank's
// main thread stays free for the communicator's callbacks and progress output.
import { parentPort, workerData } from "node:worker_threads";

import * as ort from "onnxruntime-node";

import type { FromWorker, ToWorker } from "./session.js";

const port = parentPort!;
const { model, threads } = workerData as { model: string; threads: number };
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
  });
  post({ kind: "ready", inputs: session.inputMetadata.map(meta), outputs: session.outputMetadata.map(meta) });
  port.on("message", async (m: ToWorker) => {
    try {
      const feeds = { [m.input]: new ort.Tensor(m.type, m.data, m.dims) };
      const out = (await session.run(feeds, [m.output]))[m.output];
      if (out.type !== "float32") throw new Error(`output '${m.output}' is ${out.type}; unicc-eval scores float32 outputs`);
      const data = (out.data as Float32Array).slice();
      post({ kind: "result", id: m.id, data, dims: [...out.dims] }, [data.buffer]);
    } catch (e) {
      post({ kind: "error", id: m.id, message: (e as Error).message });
    }
  });
} catch (e) {
  post({ kind: "error", id: -1, message: (e as Error).message });
}

function meta(m: ort.InferenceSession.ValueMetadata) {
  return m.isTensor
    ? { name: m.name, type: m.type as string, shape: m.shape.map((d) => (typeof d === "number" && d >= 0 ? d : String(d))) }
    : { name: m.name, type: "non-tensor", shape: [] };
}
