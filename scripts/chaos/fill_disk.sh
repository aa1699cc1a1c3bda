#!/usr/bin/env bash
# Fill a local volume for real, to see a broker on it meet ENOSPC (the disk-full tests and by hand; root needed to
# mount). The Kubernetes counterpart, for a broker pod, is deploy/testing/chaos/fill-disk.sh.
#
#   scripts/chaos/fill_disk.sh mount DIR SIZE   mount a tmpfs of SIZE (e.g. 8m) at DIR (created if missing)
#   scripts/chaos/fill_disk.sh fill DIR         write DIR/goqueue-chaos-ballast until the volume has no byte left
#   scripts/chaos/fill_disk.sh free DIR         remove the ballast: the space comes back
#   scripts/chaos/fill_disk.sh umount DIR       unmount the tmpfs (lazily: a broker may still hold files open)
#
# `fill` uses fallocate for what df reports free, then appends zeros until a write fails, so no block is left
# that a later small write could still take. It exits 0 once the volume is full.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "fill_disk: $*" >&2; exit 2; }

[ $# -ge 2 ] || { usage >&2; exit 2; }
action="$1" dir="$2"
ballast="$dir/goqueue-chaos-ballast"

case "$action" in
  mount)
    [ $# -eq 3 ] || die "mount needs DIR and SIZE"
    mkdir -p "$dir"
    mount -t tmpfs -o "size=$3" tmpfs "$dir"
    ;;
  fill)
    [ -d "$dir" ] || die "$dir is not a directory"
    free_kib=$(df -P -k "$dir" | awk 'NR == 2 { print $4 }')
    if [ "$free_kib" -gt 0 ]; then
      fallocate -l "${free_kib}K" "$ballast" 2>/dev/null || true
    fi
    # What fallocate could not take (rounding, a filesystem without it): zeros until ENOSPC.
    dd if=/dev/zero bs=4096 status=none >>"$ballast" 2>/dev/null || true
    echo "fill_disk: $(df -P -k "$dir" | awk 'NR == 2 { print $4 }') KiB left on the volume of $dir"
    ;;
  free)
    rm -f "$ballast"
    ;;
  umount)
    umount -l "$dir"
    ;;
  -h|--help) usage ;;
  *) die "unknown action $action (mount, fill, free, umount)" ;;
esac
