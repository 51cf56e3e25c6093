import { availableParallelism } from "node:os";

import { init, type World } from "@unicc/core";

import { bind, type Binding } from "./check.js";
import { sampleSize, slice, type Dataset } from "./data/index.js";
import { Counts, LOSS_SCALE, type Scores } from "./metrics.js";
import { WorkerSession } from "./session.js";
import { maxShard, shardRange } from "./shard.js";

/** Up to this many classes a confusion matrix is counted unless asked otherwise (ImageNet's 1000 fit). */
const CONFUSION_MAX_CLASSES = 1024;

export interface EvaluateOptions {
  /** Path of the .onnx file. */
  model: string;
  /** The whole dataset; each rank evaluates its contiguous shard of it. */
  data: Dataset;
  /** The job to share the work with (default: init() from the environment, closed at the end). */
  world?: World;
  /** Model input fed with the data (default: its only input). */
  input?: string;
  /** Model output scored, [batch, classes] float32 (default: its first output). */
  output?: string;
  /** What the output holds: "logits" (default; the loss applies softmax) or "probabilities". */
  scores?: Scores;
  /** Samples per session.run (default 64; the model's own where its batch axis is fixed). */
  batch?: number;
  /** onnxruntime intra-op threads (default: the cores divided among this host's ranks). */
  threads?: number;
  /**
   * Count a confusion matrix (default: for up to CONFUSION_MAX_CLASSES classes; it travels as
   * classes² 64-bit integers in the one allreduce at the end, 8 MB for ImageNet's 1000).
   */
  confusion?: boolean;
  /** Also gather every output row to rank 0 (memory: samples x classes floats). */
  keepOutputs?: boolean;
  /** Called on rank 0 with a progress line about once a second. */
  progress?: (line: string) => void;
}

export interface EvaluateResult {
  rank: number;
  size: number;
  count: number;
  classes: number;
  /** Present where the data has labels: mean loss, accuracy, the integer sums and the confusion matrix (row = label). */
  metrics?: { loss: number; accuracy: number; correct: number; lossSum: number; confusion?: number[][] };
  /** Rank 0 only: the predicted class of every sample, in dataset order. */
  predictions?: Int32Array;
  /** Rank 0 only, with keepOutputs: every output row, in dataset order. */
  outputs?: Float32Array;
  /** Time from the common start to the gathered result, on this rank. */
  seconds: number;
  samplesPerSecond: number;
  /** This rank's time in inference, waiting for the slowest rank, and in the collectives that combine results. */
  computeSeconds: number;
  waitSeconds: number;
  commSeconds: number;
}

/** Evaluates `data` with `model` across the ranks of a job; every rank calls it with the same arguments. */
export async function evaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  const world = opts.world ?? (await init());
  try {
    return await evaluateIn(world, opts);
  } finally {
    if (!opts.world) await world.close();
  }
}

async function evaluateIn(world: World, opts: EvaluateOptions): Promise<EvaluateResult> {
  const { rank, size } = world;
  const { data } = opts;
  const threads = opts.threads ?? Math.max(1, Math.floor(availableParallelism() / world.localSize));
  const session = await WorkerSession.open(opts.model, threads);
  try {
    const binding = bind(opts.model, session.inputs, session.outputs, data, rank, opts);
    const batch = binding.fixedBatch ?? opts.batch ?? 64;
    const classes = await classCount(session, binding, data);
    const { start, end } = shardRange(data.count, rank, size);
    const pad = maxShard(data.count, size);
    const predictions = new Int32Array(pad);
    const outputs = opts.keepOutputs ? new Float32Array(pad * classes) : undefined;
    const counts = new Counts(classes, opts.scores ?? "logits", opts.confusion ?? classes <= CONFUSION_MAX_CLASSES);

    await world.barrier(); // a common start, so that seconds and samples/s describe the job
    const t0 = performance.now();
    let lastReport = t0;
    for (let at = start; at < end; at += batch) {
      const n = Math.min(batch, end - at);
      const part = slice(data, at, at + n);
      const scores = await runBatch(session, binding, part);
      counts.add(scores, part.labels, predictions.subarray(at - start, at - start + n));
      outputs?.set(scores, (at - start) * classes);
      const now = performance.now();
      if (opts.progress && rank === 0 && now - lastReport > 1000) {
        lastReport = now;
        const rate = (at + n - start) / ((now - t0) / 1000);
        opts.progress(`unicc-eval: rank 0 ${at + n - start}/${end - start} (${Math.round((100 * (at + n - start)) / (end - start))}%), ` +
          `${Math.round(rate)} samples/s per rank, ~${Math.round(rate * size)} samples/s for ${size} rank(s)`);
      }
    }
    const t1 = performance.now();
    await world.barrier(); // what the slowest rank costs the others, kept apart from communication
    const t2 = performance.now();
    await world.allreduce(counts.values, { op: "sum" });
    const gathered = await world.allgather(predictions);
    const gatheredOutputs = outputs && (await world.allgather(outputs));
    const t3 = performance.now();

    const seconds = (t3 - t0) / 1000;
    return {
      rank,
      size,
      count: data.count,
      classes,
      metrics: data.labels ? metricsOf(counts) : undefined,
      predictions: rank === 0 ? inOrder(gathered, data.count, size, 1) : undefined,
      outputs: rank === 0 && gatheredOutputs ? inOrder(gatheredOutputs, data.count, size, classes) : undefined,
      seconds,
      samplesPerSecond: data.count / seconds,
      computeSeconds: (t1 - t0) / 1000,
      waitSeconds: (t2 - t1) / 1000,
      commSeconds: (t3 - t2) / 1000,
    };
  } finally {
    await session.close();
  }
}

/** The class count from the output's declared shape, else from one sample (the same on every rank, even one with an empty shard). */
async function classCount(session: WorkerSession, binding: Binding, data: Dataset): Promise<number> {
  const declared = session.outputs.find((m) => m.name === binding.output)!.shape[1];
  if (typeof declared === "number") return declared;
  if (data.count === 0) throw new Error("unicc-eval: the dataset is empty");
  const probe = await runBatch(session, binding, slice(data, 0, 1));
  return probe.length;
}

/** One session.run over `part`, zero-padded to the model's fixed batch size where it has one. */
async function runBatch(session: WorkerSession, binding: Binding, part: Dataset): Promise<Float32Array> {
  const per = sampleSize(part.sampleShape);
  const rows = binding.fixedBatch ?? part.count;
  let features = part.features;
  if (rows > part.count) {
    features = new (features.constructor as new (n: number) => typeof features)(rows * per);
    features.set(part.features as never);
  }
  const out = await session.run(binding.input, binding.output, part.type, features, [rows, ...part.sampleShape]);
  if (out.dims[0] !== rows) throw new Error(`unicc-eval: output '${binding.output}' has ${out.dims[0]} rows for a batch of ${rows}`);
  return out.data.subarray(0, part.count * out.dims[1]);
}

/** Drops the padding of each rank's block of an allgather: dataset order again. */
function inOrder<T extends Int32Array | Float32Array>(gathered: T, count: number, size: number, width: number): T {
  const pad = maxShard(count, size);
  const out = new (gathered.constructor as new (n: number) => T)(count * width);
  for (let r = 0; r < size; r++) {
    const { start, end } = shardRange(count, r, size);
    out.set(gathered.subarray(r * pad * width, (r * pad + end - start) * width), start * width);
  }
  return out;
}

function metricsOf(counts: Counts) {
  const [lossFixed, correct, n] = counts.values;
  const c = counts.classes;
  const confusion = counts.confusion
    ? Array.from({ length: c }, (_, i) => Array.from(counts.values.subarray(3 + i * c, 3 + (i + 1) * c), Number))
    : undefined;
  const lossSum = Number(lossFixed) / LOSS_SCALE;
  return { loss: lossSum / Number(n), accuracy: Number(correct) / Number(n), correct: Number(correct), lossSum, confusion };
}
