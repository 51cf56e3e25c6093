// unicc-eval: one rank of a distributed evaluation; start it under the launcher:
//   unicc run -np 4 -- unicc-eval --model m.onnx --data digits:test
import { writeFileSync } from "node:fs";

import { UniccError } from "@unicc/core";
import { newCommand, parseCommand, parseOrExit, UsageError, wholeNumber } from "@unicc/core/cli-options";

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
  --json               rank 0 also prints "unicc-eval: result {json}"
  -h, --help           this text
`;

interface Options {
  model: string;
  data: string;
  labels?: string;
  input?: string;
  output?: string;
  scores: Scores;
  batch: number;
  threads?: number;
  predictions?: string;
  outputs?: string;
  json: boolean;
}

function parse(argv: string[]): Options | "help" {
  const o: Partial<Options> = { scores: "logits", batch: 64 };
  const text = (key: "model" | "data" | "labels" | "input" | "output" | "predictions" | "outputs") => (v: string) => void (o[key] = v);
  const cmd = newCommand("unicc-eval")
    .option("--model <M.onnx>", "", text("model"))
    .option("--data <DATA>", "", text("data"))
    .option("--labels <FILE.npy>", "", text("labels"))
    .option("--input <NAME>", "", text("input"))
    .option("--output <NAME>", "", text("output"))
    .option("--scores <KIND>", "", (v) => {
      if (v !== "logits" && v !== "probabilities") throw new UsageError(`--scores takes logits or probabilities, got '${v}'`);
      o.scores = v;
    })
    .option("--batch <N>", "", (v) => void (o.batch = wholeNumber("--batch", v, 1)))
    .option("--threads <N>", "", (v) => void (o.threads = wholeNumber("--threads", v, 1)))
    .option("--predictions <FILE>", "", text("predictions"))
    .option("--outputs <FILE.npy>", "", text("outputs"))
    .option("--json");
  const { opts } = parseCommand(cmd, argv);
  if (opts.help) return "help";
  if (!o.model || !o.data) throw new UsageError("--model and --data are required");
  return { ...(o as Options), json: opts.json === true };
}

function report(r: EvaluateResult, o: Options): void {
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

const o = parseOrExit("unicc-eval", USAGE, () => parse(process.argv.slice(2)));
if (typeof o === "number") process.exit(o);
try {
  const data = openDataset(o.data, o.labels);
  const r = await evaluate({ ...o, data, keepOutputs: o.outputs !== undefined, progress: (line) => console.log(line) });
  if (r.rank === 0) report(r, o);
} catch (e) {
  // A peer's failure arrives as a UniccError that already names the rank at fault.
  console.error(e instanceof UniccError || (e as Error).message.startsWith("unicc-eval:") ? (e as Error).message : (e as Error).stack);
  process.exit(1);
}
