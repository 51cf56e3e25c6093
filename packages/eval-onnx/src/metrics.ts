/**
 * Metrics as integers, so that their sums do not depend on how the set was split: a loss sum in
 * fixed point (2^-32 units) beside the correct count, the sample count and, if asked for, a
 * confusion matrix (row = label, column = prediction). Integer addition is exact and associative, so 1, 2 or 4
 * ranks give the same bits.
 */
export const LOSS_SCALE = 2 ** 32;

export class Counts {
  /** [loss sum, correct, count, confusion (classes x classes, where kept)] */
  readonly values: BigInt64Array;

  constructor(
    readonly classes: number,
    private readonly scores: Scores,
    readonly confusion: boolean,
  ) {
    this.values = new BigInt64Array(3 + (confusion ? classes * classes : 0));
  }

  /** Adds a batch: `outputs` holds `classes` scores (logits or probabilities) per sample. */
  add(outputs: Float32Array, labels: Int32Array | undefined, predictions: Int32Array): void {
    const c = this.classes;
    for (let i = 0; i < predictions.length; i++) {
      const row = outputs.subarray(i * c, (i + 1) * c);
      predictions[i] = argmax(row);
      if (!labels) continue;
      const y = labels[i];
      if (y >= c) throw new Error(`unicc-eval: label ${y} but the model scores only ${c} classes`);
      this.values[0] += BigInt(Math.round(crossEntropy(row, y, this.scores) * LOSS_SCALE));
      if (predictions[i] === y) this.values[1] += 1n;
      if (this.confusion) this.values[3 + y * c + predictions[i]] += 1n;
    }
    this.values[2] += BigInt(predictions.length);
  }
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
  return best;
}

/** What a model's output row holds: raw scores (softmax is applied for the loss) or probabilities. */
export type Scores = "logits" | "probabilities";

/** The negative log-likelihood of class y, in float64. */
export function crossEntropy(row: Float32Array, y: number, scores: Scores): number {
  if (scores === "probabilities") return -Math.log(Math.max(row[y], 1e-30));
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let z = 0;
  for (const v of row) z += Math.exp(v - max);
  return Math.log(z) + max - row[y];
}
