import { copyFileSync } from "node:fs";

import { defineConfig } from "tsup";

export default defineConfig({
  // worker and engine-worker are the ranks' programs; cluster is the emulated network for the
  // adapters' own benches (packages/adapter-*/bench/run.mjs).
  entry: { cli: "src/cli.ts", worker: "src/worker.ts", "engine-worker": "src/engine-worker.ts", cluster: "src/cluster.ts" },
  format: ["esm"],
  target: "node20",
  sourcemap: true,
  clean: true,
  splitting: true,
  // tests/cluster/cluster.ts (bundled) runs cluster.sh from beside itself.
  onSuccess: async () => copyFileSync("../../tests/cluster/cluster.sh", "dist/cluster.sh"),
});
