#!/usr/bin/env bash
# Installs the benchmark's peers: PyTorch (Gloo) in a venv, Open MPI from Debian, and builds the
# MPI timing program. Idempotent; `unicc bench` runs it when something is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
  echo "[bench setup] installing Open MPI (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null
fi

if [ ! -x "$here/.venv/bin/python" ] || ! "$here/.venv/bin/python" -c "import torch, matplotlib, numpy" 2>/dev/null; then
  echo "[bench setup] creating $here/.venv with torch 2.13.0 (CPU), numpy, matplotlib"
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0 numpy matplotlib
fi

mkdir -p "$here/build"
if [ ! -x "$here/build/mpi_allreduce" ] || [ "$here/peers/mpi_allreduce.c" -nt "$here/build/mpi_allreduce" ]; then
  echo "[bench setup] building build/mpi_allreduce"
  mpicc -O2 -o "$here/build/mpi_allreduce" "$here/peers/mpi_allreduce.c"
fi
