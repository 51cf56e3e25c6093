import { loadDigits } from "./digits.js";
import { readJsonLines } from "./jsonl.js";
import { readNpy } from "./npy.js";
import { toLabels, type Dataset } from "./dataset.js";

export { loadDigits, DIGITS_TRAIN } from "./digits.js";
export { readJsonLines } from "./jsonl.js";
export { parseNpy, readNpy } from "./npy.js";
export { numpyPermutation } from "./mt19937.js";
export { slice, sampleSize, type Dataset, type FeatureArray, type FeatureType } from "./dataset.js";

/**
 * A dataset named on the command line: `digits`, `digits:train`, `digits:test`; a `.npy` file of
 * features (first axis = samples) with `labels`, an optional `.npy` of class indices; or a
 * `.jsonl` file.
 */
export function openDataset(spec: string, labels?: string): Dataset {
  const digits = /^digits(?::(all|train|test))?$/.exec(spec);
  if (digits) return loadDigits((digits[1] ?? "all") as "all" | "train" | "test");
  let data: Dataset;
  if (spec.endsWith(".npy")) {
    const a = readNpy(spec);
    if (a.shape.length < 1) throw new Error(`unicc-eval: ${spec} is a scalar; its first axis must be the samples`);
    data = { features: a.data, type: a.type, sampleShape: a.shape.slice(1), count: a.shape[0], source: spec };
  } else if (spec.endsWith(".jsonl") || spec.endsWith(".ndjson")) {
    data = readJsonLines(spec);
  } else {
    throw new Error(`unicc-eval: --data ${spec}: give digits[:train|:test], a .npy file or a .jsonl file`);
  }
  if (labels !== undefined) {
    const l = readNpy(labels);
    if (l.shape.length !== 1 || l.shape[0] !== data.count)
      throw new Error(`unicc-eval: --labels ${labels} has shape (${l.shape.join(", ")}); it must be (${data.count},), one per sample of ${spec}`);
    data.labels = toLabels(l.data, labels);
  }
  return data;
}
