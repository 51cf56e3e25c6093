// unicc-eval's options in unicc's one style (commander, @unicc/core/cli-options): --help exits 0,
// bad input exits 2 with one line naming the flag, before any rank work.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const EVAL = fileURLToPath(new URL("../bin/unicc-eval.js", import.meta.url));
const run = (args: string[]) => spawnSync(process.execPath, [EVAL, ...args], { encoding: "utf8" });

describe("unicc-eval options", () => {
  it("prints its usage on --help and rejects bad input in one line", () => {
    expect(run(["--help"])).toMatchObject({ status: 0, stdout: expect.stringMatching(/^usage: unicc run -np N -- unicc-eval/) });
    for (const [args, message] of [
      [["--model", "m.onnx", "--data", "digits", "--frobnicate"], "unknown option '--frobnicate'"],
      [["--model", "m.onnx", "--data"], "--data needs a value"],
      [["--data", "digits"], "--model and --data are required"],
      [["--model", "m.onnx", "--data", "digits", "--batch", "0"], "--batch needs a whole number of at least 1, got '0'"],
      [["--model", "m.onnx", "--data", "digits", "--scores", "odds"], "--scores takes logits or probabilities, got 'odds'"],
    ] as const)
      expect(run([...args])).toMatchObject({ status: 2, stderr: `unicc-eval: ${message} (see unicc-eval --help)\n` });
  });
});
