// Ray Train on unicc, on a real local Ray (head started here on 127.0.0.2, since Ray swaps
// 127.0.0.1 for the machine's own address): TorchTrainer with torch_config=UniccConfig() gives
// its workers unicc's process group; allreduce and a DDP step match references the workers compute.
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { RayNode, rayPython } from "./ray-cluster.js";

const DRIVER = fileURLToPath(new URL("./workers/ray_train.py", import.meta.url));

describe("Ray Train with UniccConfig", () => {
  let python: string;
  let head: RayNode | undefined;
  let out: string;
  let address: string;

  beforeAll(async () => {
    python = rayPython();
    out = mkdtempSync("/var/tmp/unicc-ray-");
    ({ head, address } = await RayNode.head(python, 4, `${out}/ray`));
  }, 600_000);
  afterAll(async () => {
    await head?.stop();
    rmSync(out, { recursive: true, force: true });
  }, 60_000);

  it("TorchTrainer, 2 workers: the process group is unicc's; allreduce exact, a DDP step equals one process's on the whole batch", async () => {
    const seed = randomInt(1, 1 << 20);
    const driver = spawn(python, [DRIVER, address, out, String(seed), "2"], {
      stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, OMP_NUM_THREADS: "1", RAY_USAGE_STATS_ENABLED: "0", UNICC_TIMEOUT_S: "30" },
    });
    let log = "";
    driver.stdout.on("data", (d) => (log += d));
    driver.stderr.on("data", (d) => (log += d));
    const code = await new Promise((r) => driver.on("close", r));
    expect(code, log.slice(-4000)).toBe(0);
    for (const rank of [0, 1]) {
      const r = JSON.parse(readFileSync(`${out}/rank${rank}.json`, "utf8"));
      expect(r).toMatchObject({ rank, size: 2, backend: "unicc", unicc_rank: rank, unicc_size: 2 });
      expect(r.allreduce_diff).toBeLessThan(1e-9);
      expect(r.step_diff).toBeLessThan(1e-6);
    }
  }, 300_000);
});
