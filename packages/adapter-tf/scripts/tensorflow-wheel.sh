#!/usr/bin/env bash
# Fetches the tensorflow-cpu 2.21.0 wheel once (without its dependencies) and prints its path.
# Both TensorFlow routes start from this one file: the Keras venv installs it (pip --find-links its
# folder), and the tfjs-node build takes the TensorFlow C library and headers out of it.
# UNICC_TF_WHEELS picks the folder (default: packages/adapter-tf/.wheels, ignored by git).
# An argument picks another distribution of the same release: `tensorflow` (CUDA) for tfjs-node-gpu.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dist="${1:-tensorflow-cpu}"
dir="${UNICC_TF_WHEELS:-$here/.wheels}"
mkdir -p "$dir"
wheel=$(ls "$dir/${dist//-/_}"-2.21.0-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$dir" "$dist==2.21.0"
  wheel=$(ls "$dir/${dist//-/_}"-2.21.0-*.whl | head -n 1)
fi
echo "$wheel"
