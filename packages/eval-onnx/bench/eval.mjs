// Samples/s of distributed evaluation at 1, 2 and 4 ranks, for the digits MLP and a ResNet-50,
// with the share of each run spent communicating (rank 0's time in the collectives that combine
// metrics and predictions) and waiting for the slowest rank. Medians of --repeats runs.
//   node packages/eval-onnx/bench/eval.mjs [--repeats 3] [--images 48]
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({ options: { repeats: { type: "string", default: "3" }, images: { type: "string", default: "48" } } });
const root = fileURLToPath(new URL("../../../", import.meta.url));
const here = fileURLToPath(new URL("./", import.meta.url));
const python = execFileSync("bash", [join(root, "packages/adapter-torch-bridge/scripts/setup-venv.sh")], { encoding: "utf8" }).trim().split("\n").pop();
const dir = mkdtempSync(join(tmpdir(), "unicc-eval-bench-"));
for (const [script, ...args] of [[join(here, "../test/fixtures/export-torch.py")], [join(here, "resnet50.py"), opts.images]])
  execFileSync(python, [script, dir, ...args], { stdio: ["ignore", "ignore", "pipe"] });

const MODELS = [
  { name: "digits MLP 784-64-10, 10,000 digits", args: ["--model", join(dir, "mlp.onnx"), "--data", "digits"] },
  { name: `ResNet-50, ${opts.images} images 3x224x224`, args: ["--model", join(dir, "resnet50.onnx"), "--data", join(dir, "images.npy"), "--labels", join(dir, "labels.npy"), "--batch", "4"] },
];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log("| model | ranks | samples/s | vs 1 rank | communication | waiting for the slowest rank |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const m of MODELS) {
  let one;
  for (const np of [1, 2, 4]) {
    const runs = [];
    for (let i = 0; i < Number(opts.repeats); i++) {
      const r = spawnSync(process.execPath, [join(root, "packages/core-native/dist/cli.js"), "run", "-np", String(np), "--",
        "node", join(root, "packages/eval-onnx/bin/unicc-eval.js"), "--json", ...m.args], { encoding: "utf8" });
      const line = /^\[0\] unicc-eval: result (.*)$/m.exec(r.stdout);
      if (!line) throw new Error(`run failed:\n${r.stdout}\n${r.stderr}`);
      runs.push(JSON.parse(line[1]));
    }
    const sps = median(runs.map((r) => r.samplesPerSecond));
    one ??= sps;
    const share = (k) => `${(100 * median(runs.map((r) => r[k] / r.seconds))).toFixed(1)}%`;
    console.log(`| ${m.name} | ${np} | ${sps.toFixed(0)} | ${(sps / one).toFixed(2)}x | ${share("commSeconds")} | ${share("waitSeconds")} |`);
  }
}
rmSync(dir, { recursive: true, force: true });
