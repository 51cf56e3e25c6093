#!/usr/bin/env bash
# The Python environment @unicc/torch's tests, example and benchmark run in: torch 2.13 (the CPU
# wheel from /opt/wheels when present, else PyPI) and numpy, with unicc and unicc.torch on its path.
# Prints the venv's python. UNICC_TORCH_VENV picks another place for it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
exec bash "$here/../core-native/scripts/python-venv.sh" "${UNICC_TORCH_VENV:-$here/.venv}" "$here/python" -- "torch==2.13.0" numpy "onnx==1.23.2" "onnxscript==0.7.2"
