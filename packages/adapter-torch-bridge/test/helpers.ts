import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

export { lines, runJob, type JobResult } from "../../core-native/test/run-job.js";

export const WORKERS = fileURLToPath(new URL("./workers/", import.meta.url));
const SETUP = fileURLToPath(new URL("../scripts/setup-venv.sh", import.meta.url));

/** The venv's python (made by scripts/setup-venv.sh: torch 2.13 + numpy + the unicc packages). */
export function venvPython(): string {
  return execFileSync("bash", [SETUP], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
}

/** What the bridge leaves if it leaks: its shared-memory files and its private socket directories. */
export function bridgeLeftovers(): string[] {
  const shm = readdirSync("/dev/shm").filter((f) => f.startsWith("unicc-") && f.includes("-bridge-"));
  const socks = readdirSync(tmpdir()).filter((f) => f.startsWith("unicc-bridge-"));
  return [...shm.map((f) => `/dev/shm/${f}`), ...socks.map((f) => `${tmpdir()}/${f}`)];
}

/** A Python 3.9 (the oldest the client supports): `python3.9` on PATH, else one installed by pyenv. */
export function python39(): string | undefined {
  const root = process.env.PYENV_ROOT ?? `${homedir()}/.pyenv`;
  const pyenv = existsSync(`${root}/versions`)
    ? readdirSync(`${root}/versions`).filter((v) => v.startsWith("3.9.")).map((v) => `${root}/versions/${v}/bin/python3.9`)
    : [];
  for (const candidate of ["python3.9", ...pyenv]) {
    try {
      execFileSync(candidate, ["-c", "import sys; assert sys.version_info[:2] == (3, 9)"], { stdio: "ignore" });
      return candidate;
    } catch {
      // not this one
    }
  }
  return undefined;
}
