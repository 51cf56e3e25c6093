#!/usr/bin/env bash
# Makes the Debian bullseye root that @unicc/caffe's tests and example run their ranks in: Caffe 1.0
# (CPU build) and pycaffe on Python 3.9, which bookworm no longer packages. Idempotent: a root that
# already imports caffe is left alone. Prints the root's path. UNICC_CAFFE_ROOT picks another place
# (default /var/tmp/unicc-bullseye, outside git; about 1 GB).
set -euo pipefail
root="$(realpath -m "${UNICC_CAFFE_ROOT:-/var/tmp/unicc-bullseye}")"
mirror="${UNICC_BULLSEYE_MIRROR:-http://deb.debian.org/debian}"
pkgs=(caffe python3-caffe python3-numpy python3-protobuf python3-lmdb python3-h5py)
stamp="$root/.unicc-root-ready"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then echo "$root"; exit 0; fi

command -v debootstrap >/dev/null || {
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null
}
# A half-made root (an interrupted run) is finished, not trusted: debootstrap only when it never completed.
if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -f "$root/.unicc-debootstrap-done" ]; then
  # Only ever replace a folder this script started (marked), and never with anything mounted in it.
  if [ -e "$root" ] && [ -n "$(ls -A "$root")" ] && [ ! -f "$root/.unicc-root" ]; then
    echo "make-bullseye-root: $root is not empty and not a root this script made; refusing to replace it" >&2; exit 1
  fi
  if awk -v r="$root" '$5 == r || index($5, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    echo "make-bullseye-root: something is mounted under $root; unmount it first" >&2; exit 1
  fi
  rm -rf "$root"
  mkdir -p "$root"
  touch "$root/.unicc-root"
  debootstrap --variant=minbase bullseye "$root" "$mirror" >&2
  touch "$root/.unicc-debootstrap-done"
fi
# apt inside the root needs no mounts; pure chroot keeps this free of anything to clean up.
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
  install -y -qq --no-install-recommends "${pkgs[@]}" >&2
chroot "$root" apt-get clean
chroot "$root" env OMP_NUM_THREADS=1 python3 -c 'import caffe, sys; assert sys.version_info[:2] == (3, 9), sys.version' >&2
echo "${pkgs[*]}" > "$stamp"
echo "$root"
