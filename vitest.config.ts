import { defineConfig } from "vitest/config";

// Tests start real processes (ranks, launchers, stores); run files one at a time so that
// 4- and 8-rank jobs do not fight each other for the machine's two cores.
export default defineConfig({
  test: {
    include: ["packages/*/test/**/*.test.ts", "tests/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
