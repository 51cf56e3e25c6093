import { defineConfig } from "tsup";

// The session worker is a file of its own: worker_threads loads it by path.
export default defineConfig({
  entry: { index: "src/index.ts", cli: "src/cli.ts", "session-worker": "src/session-worker.ts" },
  format: ["esm"],
  target: "node20",
  dts: { entry: "src/index.ts" },
  sourcemap: true,
  clean: true,
});
