/** Element types a dataset's features may have, by their onnxruntime name. */
export type FeatureType = "float32" | "float64" | "int32" | "int64" | "uint8";

export type FeatureArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/**
 * Samples in one flat array, sample after sample: `count` samples of `sampleShape` each, with
 * optional integer labels (one class index per sample). `source` names where they came from, for
 * error messages.
 */
export interface Dataset {
  features: FeatureArray;
  type: FeatureType;
  sampleShape: number[];
  count: number;
  labels?: Int32Array;
  source: string;
}

export const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  int64: BigInt64Array,
  uint8: Uint8Array,
} as const;

export const sampleSize = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Samples [start, end) of `data` as a view (no copy). */
export function slice(data: Dataset, start: number, end: number): Dataset {
  const per = sampleSize(data.sampleShape);
  return {
    ...data,
    features: data.features.subarray(start * per, end * per) as FeatureArray,
    labels: data.labels?.subarray(start, end),
    count: end - start,
  };
}

/** Labels as class indices, checked to be whole numbers >= 0. */
export function toLabels(values: ArrayLike<number | bigint>, source: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Number(values[i]);
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff)
      throw new Error(`unicc-eval: label ${i} of ${source} is ${v}; labels must be class indices (whole numbers >= 0)`);
    out[i] = v;
  }
  return out;
}
