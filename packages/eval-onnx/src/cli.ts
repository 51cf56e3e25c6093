// unicc-eval: one rank of a distributed evaluation; start it under the launcher:
//   unicc run -np 4 -- unicc-eval --model m.onnx --data digits:test
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { UniccError } from "@unicc/core";

import { openDataset } from "./data/index.js";
import { evaluate, type EvaluateResult } from "./evaluate.js";
import type { Scores } from "./metrics.js";
import { writeNpy } from "./npy-write.js";

const USAGE = `usage: unicc run -np N -- unicc-eval --model M.onnx --data DATA [options]
  --data DATA          digits | digits:train | digits:test (the mnist package's digits in
                       examples/digits.py's order), FILE.npy (first axis = samples) or FILE.jsonl
                       (one {"x": [...], "y": class} per line)
  --labels FILE.npy    class indices for a .npy --data (one per sample)
  --input NAME         model input to feed (default: its only input)
  --output NAME        model output to score, [batch, classes] float32 (default: its first)
  --scores KIND        logits (default) or probabilities: what the output holds, for the loss
  --batch N            samples per session.run (default 64)
  --threads N          onnxruntime threads per rank (default: cores / ranks on this host)
  --predictions FILE   rank 0 writes the predicted classes, in dataset order (.npy int32 or .json)
  --outputs FILE.npy   rank 0 writes every output row, in dataset order (float32)
  --json               rank 0 also prints "unicc-eval: result {json}"`;

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function options() {
  try {
    const { values } = parseArgs({
      options: {
        model: { type: "string" },
        data: { type: "string" },
        labels: { type: "string" },
        input: { type: "string" },
        output: { type: "string" },
        scores: { type: "string", default: "logits" },
        batch: { type: "string", default: "64" },
        threads: { type: "string" },
        predictions: { type: "string" },
        outputs: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    if (!values.model || !values.data) fail("unicc-eval: --model and --data are required");
    if (values.scores !== "logits" && values.scores !== "probabilities") fail(`unicc-eval: --scores ${values.scores}: logits or probabilities`);
    const count = (flag: string, v: string | undefined) => {
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) fail(`unicc-eval: --${flag} ${v} is not a whole number >= 1`);
      return n;
    };
    return { ...values, model: values.model, data: values.data, scores: values.scores as Scores, batch: count("batch", values.batch), threads: count("threads", values.threads) };
  } catch (e) {
    if (e instanceof TypeError) fail(`unicc-eval: ${e.message}`);
    throw e;
  }
}

function report(r: EvaluateResult, o: ReturnType<typeof options>): void {
  const m = r.metrics;
  const share = (x: number) => `${((100 * x) / r.seconds).toFixed(1)}%`;
  console.log(`unicc-eval: ${r.count} samples on ${r.size} rank(s) in ${r.seconds.toFixed(2)} s, ${Math.round(r.samplesPerSecond)} samples/s; ` +
    `rank 0: inference ${share(r.computeSeconds)}, waiting for the slowest rank ${share(r.waitSeconds)}, communication ${share(r.commSeconds)}`);
  if (m) console.log(`unicc-eval: accuracy ${(100 * m.accuracy).toFixed(2)}% (${m.correct}/${r.count}), mean loss ${m.loss.toFixed(6)}`);
  if (o.predictions) {
    if (o.predictions.endsWith(".npy")) writeNpy(o.predictions, r.predictions!, [r.count]);
    else writeFileSync(o.predictions, JSON.stringify(Array.from(r.predictions!)) + "\n");
  }
  if (o.outputs) writeNpy(o.outputs, r.outputs!, [r.count, r.classes]);
  if (o.json) {
    const { predictions: _p, outputs: _o, ...summary } = r;
    console.log(`unicc-eval: result ${JSON.stringify(summary)}`);
  }
}

const o = options();
try {
  const data = openDataset(o.data, o.labels);
  const r = await evaluate({ ...o, data, keepOutputs: o.outputs !== undefined, progress: (line) => console.log(line) });
  if (r.rank === 0) report(r, o);
} catch (e) {
  // A peer's failure arrives as a UniccError that already names the rank at fault.
  console.error(e instanceof UniccError || (e as Error).message.startsWith("unicc-eval:") ? (e as Error).message : (e as Error).stack);
  process.exit(1);
}
