import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The core's C++ unit tests (googletest, test/native/), built with the addon and registered with
// ctest; run here so that `npm test` runs them.
const TESTS = fileURLToPath(new URL("../build/Release/unicc_native_tests", import.meta.url));

describe("the core's C++ unit tests (googletest)", () => {
  it("schedules, executor and channels pass", () => {
    if (!existsSync(TESTS))
      throw new Error(`${TESTS} was not built: install googletest (apt-get install libgtest-dev; .ci/run does) and rebuild (npm run build)`);
    const run = spawnSync(TESTS, ["--gtest_brief=1"], { encoding: "utf8", timeout: 120_000 });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/PASSED/);
  });
});
