import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";

import { DistributedOptimizer, type Comm } from "../src/index.js";

// A world of one: the optimizer exchanges nothing, which is all these checks need.
const single = { rank: 0, size: 1 } as Comm;

describe("DistributedOptimizer serialisation", () => {
  it("saves as the optimizer it wraps, state included, and loads back as that optimizer", async () => {
    const opt = new DistributedOptimizer(tf.train.adam(0.02, 0.8, 0.95), single);
    expect(opt.getClassName()).toBe("Adam");
    expect(opt.getConfig()).toEqual(tf.train.adam(0.02, 0.8, 0.95).getConfig());
    expect(opt instanceof tf.Optimizer).toBe(true);

    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
    model.compile({ optimizer: opt, loss: "meanSquaredError" });
    const x = tf.randomNormal([8, 3]), y = tf.randomNormal([8, 2]);
    await model.fit(x, y, { batchSize: 4, epochs: 1, verbose: 0 });
    expect(opt.iterations).toBe(2);

    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => ((saved = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } })), { includeOptimizer: true });
    const training = saved!.trainingConfig as unknown as { optimizer_config: { class_name: string; config: Record<string, number> } };
    expect(training.optimizer_config.class_name).toBe("Adam");
    expect(training.optimizer_config.config.learningRate).toBe(0.02);
    expect(saved!.weightSpecs!.filter((s) => s.group === "optimizer").map((s) => s.name)).toHaveLength(1 + 2 * 2);

    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(loaded.optimizer.getClassName()).toBe("Adam");
    expect(loaded.optimizer).not.toBeInstanceOf(DistributedOptimizer);
    const [a, b] = [await opt.getWeights(), await loaded.optimizer.getWeights()];
    expect(b.map((w) => Array.from(w.tensor.dataSync()))).toEqual(a.map((w) => Array.from(w.tensor.dataSync())));

    // Wrapped again, the loaded model trains on with the saved state.
    loaded.optimizer = new DistributedOptimizer(loaded.optimizer, single);
    await loaded.fit(x, y, { batchSize: 8, epochs: 1, verbose: 0 });
    expect(loaded.optimizer.iterations).toBe(3);
    tf.dispose([x, y]);
  });
});
