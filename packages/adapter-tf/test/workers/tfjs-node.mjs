// The test backend ids that are tfjs-node packages; both register tfjs's `tensorflow` backend.
// Shared by the workers (which import the package) and helpers.ts (which skips when it is not built).
export const TFJS_NODE = { tensorflow: "@tensorflow/tfjs-node", "tensorflow-gpu": "@tensorflow/tfjs-node-gpu" };
