import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/ts/index.ts",
    cli: "src/ts/cli.ts",
    "bench-worker": "src/ts/bench/worker.ts",
    bridge: "src/ts/bridge/main.ts",
  },
  format: ["esm"],
  target: "node20",
  dts: { entry: { index: "src/ts/index.ts" } },
  sourcemap: true,
  clean: true,
  splitting: true,
});
