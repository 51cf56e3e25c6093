// Writes a tfjs LayersModel to a folder as tfjs's own artifacts (model.json with the Keras-format
// topology and the weights manifest, plus weights.bin), with no tfjs-node: the "file://" handler
// lives there, and this works on every backend. unicc.tensorflow.tfjs_onnx turns the folder into ONNX.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import * as tf from "@tensorflow/tfjs";

export async function saveLayersModel(model, dir) {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const manifest = [{ paths: ["weights.bin"], weights: a.weightSpecs }];
      writeFileSync(join(dir, "model.json"), JSON.stringify({ modelTopology: a.modelTopology, weightsManifest: manifest }));
      writeFileSync(join(dir, "weights.bin"), Buffer.from(a.weightData));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } };
    }),
  );
}
