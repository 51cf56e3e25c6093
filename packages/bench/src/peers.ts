// What the benchmarks compare against, found on this machine or named with the command that
// installs it. The bench installs nothing itself: it only builds its own MPI program.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

/** packages/bench: this code runs bundled in its dist/. */
export const BENCH_DIR = fileURLToPath(new URL("../", import.meta.url));
const VENV_PYTHON = join(BENCH_DIR, ".venv/bin/python");
/** The Python of the Gloo/DDP peers and the plots: UNICC_BENCH_PYTHON, else packages/bench/.venv. */
export const PYTHON = process.env.UNICC_BENCH_PYTHON || VENV_PYTHON;
const MPI_SRC = join(BENCH_DIR, "peers/mpi_allreduce.c");
export const MPI_BIN = join(BENCH_DIR, "build/mpi_allreduce");

const here = (p: string) => relative(process.cwd(), p) || ".";

function commandExists(name: string): boolean {
  return spawnSync("/bin/sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

/** Whether PYTHON imports these modules. */
export function pythonHas(modules: string[]): boolean {
  return existsSync(PYTHON) && spawnSync(PYTHON, ["-c", `import ${modules.join(", ")}`], { stdio: "ignore" }).status === 0;
}

/** How to get a Python with torch (and matplotlib for the plots). */
export function pythonHint(): string {
  const venv = here(join(BENCH_DIR, ".venv"));
  return (
    `  python3 -m venv ${venv} && ${venv}/bin/pip install torch==2.13.0 numpy matplotlib\n` +
    `  or set UNICC_BENCH_PYTHON to a Python that has them (now: ${PYTHON})`
  );
}

/** Why the Gloo/DDP peer cannot run here, with what to install, or null. */
export function torchMissing(): string | null {
  return pythonHas(["torch"]) ? null : `PyTorch (the Gloo peer) is not importable by ${PYTHON}; install it:\n${pythonHint()}`;
}

/**
 * Why the Open MPI peer cannot run here, with what to install, or null; builds the bench's MPI
 * program when it is missing or older than its source.
 */
export function mpiMissing(): string | null {
  const lacking = ["mpirun", "mpicc"].filter((c) => !commandExists(c));
  if (lacking.length)
    return `Open MPI is missing (${lacking.join(", ")} not on PATH); install it, e.g.:\n  sudo apt-get install openmpi-bin libopenmpi-dev`;
  if (existsSync(MPI_BIN) && statSync(MPI_BIN).mtimeMs >= statSync(MPI_SRC).mtimeMs) return null;
  mkdirSync(join(BENCH_DIR, "build"), { recursive: true });
  const cc = spawnSync("mpicc", ["-O2", "-Wall", "-o", MPI_BIN, MPI_SRC], { stdio: "inherit" });
  return cc.status === 0
    ? null
    : `mpicc could not build ${here(MPI_BIN)} from ${here(MPI_SRC)} (see above); a missing mpi.h comes with Open MPI's headers, e.g.:\n  sudo apt-get install libopenmpi-dev`;
}
