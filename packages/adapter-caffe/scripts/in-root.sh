#!/usr/bin/env bash
# Runs a command inside the bullseye root (make-bullseye-root.sh) as one rank of a `unicc run --bridge`
# job: in a mount namespace of its own, binds the host's /dev/shm (where the launcher put the bridge's
# socket and where slabs go), /proc, this repository (the unicc client and unicc.caffe, at the same
# path), and the folders in UNICC_ROOT_BINDS (colon-separated), then chroots and runs the command in
# the same working directory. The mounts belong to that namespace only, so they are gone when the
# rank exits, however it exits: nothing to unmount, nothing left behind.
#   unicc run -np 4 --bridge -- packages/adapter-caffe/scripts/in-root.sh python3 train.py
set -euo pipefail
root="${UNICC_CAFFE_ROOT:-/var/tmp/unicc-bullseye}"
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
[ -x "$root/usr/bin/python3" ] || { echo "unicc-caffe: no bullseye root at $root; run packages/adapter-caffe/scripts/make-bullseye-root.sh" >&2; exit 2; }
[ $# -gt 0 ] || { echo "usage: in-root.sh <command...>" >&2; exit 2; }

# Inside the new namespace (re-entered with UNICC_IN_ROOT_NS set): mount, then chroot.
if [ -z "${UNICC_IN_ROOT_NS:-}" ]; then
  exec env UNICC_IN_ROOT_NS=1 unshare --mount --propagation private "$0" "$@"
fi
binds=(/dev/shm "$repo")
IFS=: read -r -a extra <<< "${UNICC_ROOT_BINDS:-}"
for d in "${binds[@]}" "${extra[@]}"; do
  [ -n "$d" ] || continue
  mkdir -p "$root$d"
  mount --bind "$d" "$root$d"
done
mount -t proc proc "$root/proc"
export PYTHONPATH="$repo/packages/core-native/python:$repo/packages/adapter-caffe/python${PYTHONPATH:+:$PYTHONPATH}"
unset UNICC_IN_ROOT_NS
exec chroot "$root" /bin/sh -c 'cd "$1" && shift && exec "$@"' unicc-rank "$PWD" "$@"
