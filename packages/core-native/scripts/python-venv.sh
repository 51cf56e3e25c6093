#!/usr/bin/env bash
# Makes (or reuses) one framework's Python environment for unicc's tests, examples and benchmarks:
#   python-venv.sh VENV ADAPTER_PYTHON_DIR [-- PIP_INSTALL_ARGS...]
# installs the pip arguments once (a stamp file remembers them), then writes a .pth that puts the
# unicc client (this package's python/) and the adapter's python/ folder on the venv's path.
# Prints the venv's python as its last line. Idempotent; PYTHON picks the interpreter.
set -euo pipefail
venv="$1"; adapter="$2"; shift 2
[ "${1:-}" = "--" ] && shift
client="$(cd "$(dirname "$0")/../python" && pwd)"
python="${PYTHON:-python3}"
stamp="$venv/.unicc-ready"
want="$*"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ $# -gt 0 ]; then
    links=()
    [ -d /opt/wheels ] && links=(--find-links /opt/wheels)
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${links[@]}" "$@"
  fi
  printf '%s' "$want" > "$stamp"
fi
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n%s\n' "$client" "$(cd "$adapter" && pwd)" > "$site/unicc.pth"
echo "$venv/bin/python"
