import { defineConfig } from "tsup";

export default defineConfig([
  {
    entry: {
      index: "src/ts/index.ts",
      cli: "src/ts/cli.ts",
      "cli-options": "src/ts/cli-options.ts",
      bridge: "src/ts/bridge/main.ts",
    },
    format: ["esm"],
    target: "node20",
    dts: { entry: { index: "src/ts/index.ts", "cli-options": "src/ts/cli-options.ts" } },
    sourcemap: true,
    clean: ["!cjs/**"], // the CommonJS build below owns dist/cjs (both configs build at once)
    splitting: true,
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
