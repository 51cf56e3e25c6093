#!/usr/bin/env bash
# Creates (or reuses) the Python environment the torch adapter's tests, example and benchmark run in:
# torch 2.13 (CPU wheel from /opt/wheels when present, else PyPI) and numpy, plus a .pth file that
# puts the unicc client package and the unicc.torch module on its path. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${UNICC_TORCH_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.unicc-ready"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ]; then
  links=()
  [ -d /opt/wheels ] && links=(--find-links /opt/wheels)
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${links[@]}" "torch==2.13.0" numpy
  touch "$stamp"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n%s\n' "$(cd "$here/../core-native/python" && pwd)" "$here/python" > "$site/unicc.pth"
echo "$venv/bin/python"
