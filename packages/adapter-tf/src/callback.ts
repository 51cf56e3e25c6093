import { CustomCallback, type Logs } from "@tensorflow/tfjs-layers";

import type { Comm } from "./layout.js";

/**
 * Replaces each number in `logs` with its average over the ranks, in place. Every rank must call
 * it with the same keys (they are reduced in sorted order, in one allreduce).
 */
export async function averageMetrics(logs: Logs | undefined, comm: Comm): Promise<void> {
  if (logs == null || comm.size === 1) return;
  const keys = Object.keys(logs).sort();
  const buf = Float64Array.from(keys, (k) => logs[k]);
  await comm.allreduce(buf, { op: "average" });
  keys.forEach((k, i) => (logs[k] = buf[i]));
}

/**
 * A `model.fit` / `fitDataset` callback that averages the epoch's logs (loss, metrics, val_*)
 * across ranks, so that every rank reports and records (History) the same numbers. Callbacks
 * listed after it see the averages; the ones before it, this rank's own values.
 */
export class MetricAverageCallback extends CustomCallback {
  constructor(comm: Comm) {
    super({ onEpochEnd: (_epoch, logs) => averageMetrics(logs, comm) });
  }
}
