#!/usr/bin/env bash
# Iterations/s of examples/caffe-lenet at 1, 2 and 4 ranks on this host (ranks in the bullseye root,
# bridges through unicc run --bridge), then at 2 emulated hosts x 2 ranks (tests/cluster, one
# `unicc run --nnodes 2 --node-rank K --bridge` per host, as on real machines), and the share of the
# time spent exchanging gradients (inside on_gradients_ready). Prints a Markdown table; takes the cpu
# lock itself, per job. EPOCHS (default 1); RANKS (default "1 2 4"); HOSTS=0 skips the emulated
# hosts (they need root); OVERLAP=1 trains with --overlap (blobs exchanged from the per-layer hook).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$repo"
bash packages/adapter-caffe/scripts/make-bullseye-root.sh >/dev/null
out="$(mktemp -d)"
tag="cfbench$$"
trap 'bash tests/cluster/cluster.sh down "$tag" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
cli="$repo/packages/core-native/dist/cli.js"
train=(packages/adapter-caffe/scripts/in-root.sh python3 "$repo/examples/caffe-lenet/train.py" --epochs "${EPOCHS:-1}" --out "$out")
[ "${OVERLAP:-0}" = 0 ] || train+=(--overlap)
export UNICC_ROOT_BINDS="$out" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

row() { # row WHERE LOG: the table row from rank 0's last epoch line
  local line ips share acc
  line="$(grep -E '^\[0\] epoch [0-9]+:' <<<"$2" | tail -1)"
  ips="$(sed -E 's/.* ([0-9.]+) iterations\/s.*/\1/' <<<"$line")"
  share="$(sed -E 's/.*exchange ([0-9]+)% .*/\1/' <<<"$line")"
  acc="$(sed -E 's/.*test accuracy ([0-9.]+)%.*/\1/' <<<"$line")"
  echo "| $1 | 64 | $ips | $share % | $acc % |"
}

# Both hosts' launchers at once, each in its host's namespaces, under the cpu lock (taken after
# `up`, whose holder processes must not inherit it); node 0's output is rank 0's.
two_hosts() {
  local addr port token
  addr="$(bash tests/cluster/cluster.sh up -t "$tag" -n 2 -o $$ | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).hosts[0].addr')"
  port=$((20000 + RANDOM % 20000))
  token="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  (
    flock 9
    for k in 0 1; do
      bash tests/cluster/cluster.sh enter "uc-$tag-h$k" env UNICC_JOB_TOKEN="$token" \
        node "$cli" run --nnodes 2 --node-rank "$k" -np 2 --master-addr "$addr" --master-port "$port" --bridge -- \
        "$repo/${train[0]}" "${train[@]:1}" >"$out/node$k.log" 2>&1 &
    done
    wait
  ) 9>>/tmp/unicc-cpu.lock
  bash tests/cluster/cluster.sh down "$tag" >/dev/null
  cat "$out/node0.log"
}

echo "| ranks | global batch | iterations/s | exchange share | test accuracy |"
echo "| --- | --- | --- | --- | --- |"
for np in ${RANKS:-1 2 4}; do
  row "$np" "$(flock /tmp/unicc-cpu.lock node "$cli" run -np "$np" --bridge -- "${train[@]}")"
done
[ "${HOSTS:-1}" = 0 ] || row "2 hosts x 2" "$(two_hosts)"
