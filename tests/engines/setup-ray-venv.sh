#!/usr/bin/env bash
# The Python environment of tests/engines/ray.test.ts: torch 2.13 (CPU) and Ray Train, with unicc
# and unicc.torch on its path. Prints its python. UNICC_RAY_VENV picks another place for it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$root/packages/core-native/scripts/python-venv.sh" "${UNICC_RAY_VENV:-$root/tests/engines/.venv-ray}" \
  "$root/packages/adapter-torch-bridge/python" -- "torch==2.13.0" numpy "ray[train]==2.60.0"
