#!/usr/bin/env bash
# Iterations/s of examples/caffe-lenet at 1, 2 and 4 ranks on this host (ranks in the bullseye root,
# bridges through unicc run --bridge), and the share of the time spent exchanging gradients (inside
# on_gradients_ready). Prints a Markdown table; takes the cpu lock itself. EPOCHS (default 1).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$repo"
bash packages/adapter-caffe/scripts/make-bullseye-root.sh >/dev/null
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "| ranks | global batch | iterations/s | exchange share | test accuracy |"
echo "| --- | --- | --- | --- | --- |"
for np in 1 2 4; do
  log="$(UNICC_ROOT_BINDS="$out" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 flock /tmp/unicc-cpu.lock \
    node packages/core-native/dist/cli.js run -np "$np" --bridge -- packages/adapter-caffe/scripts/in-root.sh \
    python3 examples/caffe-lenet/train.py --epochs "${EPOCHS:-1}" --out "$out")"
  line="$(grep -E '^\[0\] epoch [0-9]+:' <<<"$log" | tail -1)"
  ips="$(sed -E 's/.* ([0-9.]+) iterations\/s.*/\1/' <<<"$line")"
  share="$(sed -E 's/.*exchange ([0-9]+)% .*/\1/' <<<"$line")"
  acc="$(sed -E 's/.*test accuracy ([0-9.]+)%.*/\1/' <<<"$line")"
  echo "| $np | 64 | $ips | $share % | $acc % |"
done
