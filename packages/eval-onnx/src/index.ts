export { evaluate, type EvaluateOptions, type EvaluateResult } from "./evaluate.js";
export {
  openDataset,
  loadDigits,
  readNpy,
  parseNpy,
  readJsonLines,
  numpyPermutation,
  slice,
  DIGITS_TRAIN,
  type Dataset,
  type FeatureArray,
  type FeatureType,
} from "./data/index.js";
export { shardRange } from "./shard.js";
export { writeNpy } from "./npy-write.js";
export { crossEntropy, LOSS_SCALE, type Scores } from "./metrics.js";
