import { copyFileSync, existsSync } from "node:fs";

import { defineConfig } from "tsup";

const CLUSTER_SH = "../../tests/cluster/cluster.sh";

export default defineConfig([
  {
    entry: {
      index: "src/ts/index.ts",
      cli: "src/ts/cli.ts",
      "bench-worker": "src/ts/bench/worker.ts",
      "bench-engine-worker": "src/ts/bench/engine-worker.ts",
      "bench-cluster": "src/ts/bench/cluster.ts",
      bridge: "src/ts/bridge/main.ts",
    },
    format: ["esm"],
    target: "node20",
    dts: { entry: { index: "src/ts/index.ts" } },
    sourcemap: true,
    clean: ["!cjs/**"], // the CommonJS build below owns dist/cjs (both configs build at once)
    splitting: true,
    // `unicc bench engine` and bench-cluster bundle tests/cluster/cluster.ts, which runs cluster.sh from beside itself
    // (only a checkout of the repository has it).
    onSuccess: async () => {
      if (existsSync(CLUSTER_SH)) copyFileSync(CLUSTER_SH, "dist/cluster.sh");
    },
  },
  {
    // `require("@unicc/core")`: the API alone, one file (the launcher and the bridge stay ESM).
    entry: { index: "src/ts/index.ts" },
    outDir: "dist/cjs",
    format: ["cjs"],
    target: "node20",
    dts: true,
    sourcemap: true,
    clean: true,
    shims: true, // import.meta.url in native.ts
  },
]);
