#!/usr/bin/env bash
# The Python environment unicc.tensorflow's tests, example and benchmark run in: tensorflow-cpu
# 2.21.0 (Keras 3) from the wheel tensorflow-wheel.sh fetched (the same file the tfjs-node build
# uses, so CI downloads it once), its dependencies from PyPI, with unicc and unicc.tensorflow on
# its path. Prints the venv's python. UNICC_KERAS_VENV picks another place for it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
wheels="$(dirname "$(bash "$here/scripts/tensorflow-wheel.sh")")"
exec bash "$here/../core-native/scripts/python-venv.sh" "${UNICC_KERAS_VENV:-$here/.venv}" "$here/python" -- \
  --find-links "$wheels" "tensorflow-cpu==2.21.0" "tf2onnx==1.17.0" "onnx==1.23.2"
