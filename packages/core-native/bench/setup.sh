#!/usr/bin/env bash
# Installs what `unicc bench` compares against, next to this script; safe to run again (it only
# does what is missing). `unicc bench` runs it on first use.
#   bench/setup.sh [venv] [mpi]     (default: both)
#   venv: .venv with torch 2.13.0 (Gloo), numpy and matplotlib (for the plot)
#   mpi:  Debian's Open MPI if mpirun/mpicc are missing, and build/mpi_allreduce
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(venv mpi)

setup_venv() {
  local py="$here/.venv/bin/python"
  if [ -x "$py" ] && "$py" -c "import torch, numpy, matplotlib" 2>/dev/null; then return; fi
  echo "[bench setup] creating bench/.venv: torch 2.13.0 (CPU), numpy, matplotlib"
  "${PYTHON:-python3}" -m venv "$here/.venv"
  "$py" -m pip install --quiet --disable-pip-version-check torch==2.13.0 numpy matplotlib
}

setup_mpi() {
  if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null; then
    echo "[bench setup] installing Open MPI (apt-get install openmpi-bin libopenmpi-dev)"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
  fi
  local src="$here/peers/mpi_allreduce.c" bin="$here/build/mpi_allreduce"
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    echo "[bench setup] compiling bench/build/mpi_allreduce"
    mkdir -p "$here/build"
    mpicc -O2 -Wall -o "$bin" "$src"
  fi
}

for part in "${parts[@]}"; do
  case "$part" in
    venv) setup_venv ;;
    mpi) setup_mpi ;;
    *) echo "usage: bench/setup.sh [venv] [mpi]" >&2; exit 2 ;;
  esac
done
