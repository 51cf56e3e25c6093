#!/usr/bin/env bash
# Runs one rank of a `unicc run --bridge-dir DIR` job in a container made from the bullseye root
# (make-bullseye-root.sh), the way `docker run -v DIR:DIR -v ...:ro -e ...` would, without a
# container runtime: in a mount namespace of its own, an overlay of the root with a throw-away
# upper layer on tmpfs (the root itself is never written), a fresh /dev/shm, /proc, the bridge
# folder (UNICC_BRIDGE_DIR, at the same path, read-write) and the volumes given with -v; nothing
# else of this machine (its /dev/shm, this repository) is visible. Only the launcher's UNICC_* and
# torchrun-style variables reach the command, and those named with -e. Everything goes with the
# rank's namespace, however the rank ends.
#   unicc run -np 4 --bridge-dir /srv/unicc -- in-container.sh -v SRC:DST[:ro] [-e NAME] [-w DIR] -- python3 train.py
# No pid namespace: the bridge reaches a client's shared descriptors through /proc/<pid>/fd.
set -euo pipefail
root="${UNICC_CAFFE_ROOT:-/var/tmp/unicc-bullseye}"
usage="usage: in-container.sh [-v SRC:DST[:ro]]... [-e NAME]... [-w DIR] -- <command...>"
[ -x "$root/usr/bin/python3" ] || { echo "unicc-caffe: no bullseye root at $root; run packages/adapter-caffe/scripts/make-bullseye-root.sh" >&2; exit 2; }
[ -n "${UNICC_BRIDGE_DIR:-}" ] || { echo "in-container.sh: no UNICC_BRIDGE_DIR: run it under 'unicc run --bridge-dir DIR'" >&2; exit 2; }

if [ -z "${UNICC_IN_CONTAINER_NS:-}" ]; then
  exec env UNICC_IN_CONTAINER_NS=1 unshare --mount --propagation private "$0" "$@"
fi
volumes=() names=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root) workdir=/
while [ $# -gt 0 ]; do
  case "$1" in
    -v) volumes+=("$2"); shift 2 ;;
    -e) names+=("$2=${!2-}"); shift 2 ;;
    -w) workdir="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }

# The root's /mnt holds the container's layers: a tmpfs that only this namespace sees.
scratch="$root/mnt"
mount -t tmpfs -o mode=0700 tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/c"
c="$scratch/c"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$scratch/upper,workdir=$scratch/work" "$c"
mount -t proc proc "$c/proc"
mount -t tmpfs -o mode=1777 tmpfs "$c/dev/shm"

bind() { # bind SRC DST [ro]: the mount point made in the overlay, a file for a file
  if [ -d "$1" ]; then mkdir -p "$c$2"; else mkdir -p "$(dirname "$c$2")" && touch "$c$2"; fi
  mount --bind "$1" "$c$2"
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$c$2"
}
bind "$UNICC_BRIDGE_DIR" "$UNICC_BRIDGE_DIR"
for v in "${volumes[@]}"; do
  IFS=: read -r src dst mode <<< "$v"
  [ -e "$src" ] && [ -n "$dst" ] || { echo "in-container.sh: bad volume '$v' (SRC must exist; SRC:DST[:ro])" >&2; exit 2; }
  bind "$src" "$dst" "$mode"
done
for n in $(compgen -e); do
  case "$n" in
    UNICC_IN_CONTAINER_NS) ;;
    UNICC_*|RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|MASTER_ADDR|MASTER_PORT) names+=("$n=${!n}") ;;
  esac
done
exec env -i "${names[@]}" chroot "$c" /bin/sh -c 'cd "$1" && shift && exec "$@"' unicc-rank "$workdir" "$@"
