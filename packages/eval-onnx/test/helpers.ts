import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export { collect, runJob, CLI, type JobResult } from "../../core-native/test/run-job.js";

export const EVAL = fileURLToPath(new URL("../bin/unicc-eval.js", import.meta.url));
export const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** A framework's venv python, made (or reused) by its setup script, path relative to the repository root. */
export function venvPython(setupScript: string): string {
  return execFileSync("bash", [join(ROOT, setupScript)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
}

export const TORCH_SETUP = "packages/adapter-torch-bridge/scripts/setup-venv.sh";
export const MXNET_SETUP = "packages/adapter-mxnet-kv/scripts/setup-venv.sh";
export const KERAS_SETUP = "packages/adapter-tf/scripts/setup-keras-venv.sh";

/** Runs fixtures/SCRIPT with that venv's python into a fresh folder; returns the folder. */
export function exportWith(setupScript: string, script: string): string {
  const out = mkdtempSync(join(tmpdir(), "unicc-eval-"));
  execFileSync(venvPython(setupScript), [join(FIXTURES, script), out], {
    stdio: ["ignore", "ignore", "pipe"], // the exporters' warnings; execFileSync's error carries them on failure
    // One thread: several helpers share 2 cores; TensorFlow's log lines are noise here.
    env: { ...process.env, OMP_NUM_THREADS: "1", TF_CPP_MIN_LOG_LEVEL: "2", TF_NUM_INTRAOP_THREADS: "1", TF_NUM_INTEROP_THREADS: "1" },
  });
  return out;
}
