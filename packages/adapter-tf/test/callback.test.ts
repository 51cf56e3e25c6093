import { describe, expect, it } from "vitest";

import { perRank, runWorker } from "./helpers.js";

type EpochLogs = { epoch: number; logs: Record<string, number> };

describe("MetricAverageCallback", () => {
  it("gives every rank the ranks' average of loss, metrics and validation metrics, History included", async () => {
    const job = await runWorker(4, "metrics.mjs");
    const raw = perRank<EpochLogs>(job, "RAW", 4);
    const avg = perRank<EpochLogs>(job, "AVG", 4);
    const history = perRank<Record<string, number[]>>(job, "HISTORY", 4).map((r) => r[0]);
    for (let epoch = 0; epoch < 3; epoch++) {
      const keys = Object.keys(raw[0][epoch].logs).sort();
      expect(keys).toEqual(["loss", "mae", "val_loss", "val_mae"]);
      expect(raw[1][epoch].logs.loss, "ranks train on different data").not.toBe(raw[0][epoch].logs.loss);
      for (const k of keys) {
        const mean = raw.reduce((s, r) => s + r[epoch].logs[k], 0) / 4;
        for (let r = 0; r < 4; r++) {
          expect(avg[r][epoch].logs[k], `rank ${r} epoch ${epoch} ${k}`).toBe(avg[0][epoch].logs[k]);
          expect(history[r][k][epoch]).toBe(avg[0][epoch].logs[k]);
        }
        expect(avg[0][epoch].logs[k]).toBeCloseTo(mean, 12);
      }
    }
  });
});
