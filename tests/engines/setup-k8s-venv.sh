#!/usr/bin/env bash
# The Python environment that validates `unicc k8s` output offline (no API server runs here):
# kubernetes-validate for core kinds, Kubeflow's published models for PyTorchJob and JobSet.
# Prints its python. UNICC_K8S_VENV picks another place for it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$root/packages/core-native/scripts/python-venv.sh" "${UNICC_K8S_VENV:-$root/tests/engines/.venv-k8s}" \
  "$root/packages/core-native/python" -- "kubernetes-validate==1.37.0" kubeflow-training kubeflow-trainer-api pyyaml
