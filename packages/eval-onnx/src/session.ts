import { Worker } from "node:worker_threads";

import type { FeatureArray, FeatureType } from "./data/index.js";

/** An input or output as the model declares it; a string dimension is symbolic (any size). */
export interface TensorMeta {
  name: string;
  type: string;
  shape: (number | string)[];
}

export type ToWorker = { id: number; input: string; output: string; type: FeatureType; data: FeatureArray; dims: number[] };
export type FromWorker =
  | { kind: "ready"; inputs: TensorMeta[]; outputs: TensorMeta[] }
  | { kind: "result"; id: number; data: Float32Array; dims: number[] }
  | { kind: "error"; id: number; message: string };

/** An onnxruntime-node session that runs on its own worker thread. */
export class WorkerSession {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (r: { data: Float32Array; dims: number[] }) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly worker: Worker,
    readonly inputs: TensorMeta[],
    readonly outputs: TensorMeta[],
  ) {
    worker.on("message", (m: FromWorker) => {
      if (m.kind === "ready") return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      if (m.kind === "result") w?.resolve(m);
      else w?.reject(new Error(m.message));
    });
    worker.on("error", (e) => this.failAll(e));
  }

  /** Loads `model` on a new worker thread with `threads` intra-op threads. */
  static open(model: string, threads: number): Promise<WorkerSession> {
    const worker = new Worker(new URL("./session-worker.js", import.meta.url), { workerData: { model, threads } });
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(new Error(`unicc-eval: cannot load ${model}: ${e.message}`));
      worker.once("error", onError);
      worker.once("message", (m: FromWorker) => {
        worker.off("error", onError);
        if (m.kind === "ready") resolve(new WorkerSession(worker, m.inputs, m.outputs));
        else {
          void worker.terminate();
          reject(new Error(`unicc-eval: cannot load ${model}: ${m.kind === "error" ? m.message : m.kind}`));
        }
      });
    });
  }

  /** Runs one batch; `data` is copied (a view's whole buffer would travel otherwise), so the caller keeps it. */
  run(input: string, output: string, type: FeatureType, data: FeatureArray, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const copy = data.slice();
      this.worker.postMessage({ id, input, output, type, data: copy, dims } satisfies ToWorker, [copy.buffer as ArrayBuffer]);
    });
  }

  close(): Promise<number> {
    return this.worker.terminate();
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }
}
