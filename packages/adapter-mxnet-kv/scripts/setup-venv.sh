#!/usr/bin/env bash
# The Python environment @unicc/mxnet's tests, example and benchmark run in: mxnet 1.9.1 from PyPI
# with numpy 1.23.5 (`import mxnet` fails on numpy >= 1.24), with unicc and unicc.mxnet on its path.
# Prints the venv's python. UNICC_MXNET_VENV picks another place for it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
exec bash "$here/../core-native/scripts/python-venv.sh" "${UNICC_MXNET_VENV:-$here/.venv}" "$here/python" -- "mxnet==1.9.1" "numpy==1.23.5" "onnx==1.14.1"
