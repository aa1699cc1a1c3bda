#!/usr/bin/env bash
# Fill a GoQueue broker's data volume with a ballast file, to see the disk alerts fire and the broker refuse writes
# it cannot make durable — then remove the ballast.
#
#   deploy/testing/chaos/fill-disk.sh [-n NAMESPACE] [-l SELECTOR] [--pod NAME] (--percent P | --size SIZE)
#       [--hold SECONDS] [--data-dir /data] [--dry-run]
#   deploy/testing/chaos/fill-disk.sh [--pod NAME] --cleanup
#
# --percent P fills the volume until it is P % used (85: GoQueueHighDiskUsage warning after 5 min; 95: critical);
# --size SIZE adds a file of SIZE (fallocate syntax: 500M, 2G). With --hold the ballast is removed after SECONDS
# (and on Ctrl-C); without it, it stays until --cleanup. The ballast is <data-dir>/goqueue-chaos-ballast, a plain
# file the broker ignores. At 100 % the broker answers produce requests with DISK_FULL (HTTP 507) and acknowledges
# nothing it could not write; reads go on; removing the ballast lets writes resume with no restart.
#
# Limits: needs `kubectl exec` with `df` and `fallocate` in the image (the GoQueue image has both); on filesystems
# without fallocate support it falls back to writing zeros with dd (slow for large sizes). Do not fill a production
# broker: the other brokers' replicas of its partitions keep serving, but its own writes stop.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pod="" percent="" size="" hold="" data_dir="/data" cleanup=false dry_run=false
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) NAMESPACE="$2"; shift 2 ;;
    -l|--selector) SELECTOR="$2"; shift 2 ;;
    --pod) pod="$2"; shift 2 ;;
    --percent) percent="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --hold) hold="$2"; shift 2 ;;
    --data-dir) data_dir="$2"; shift 2 ;;
    --cleanup) cleanup=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if ! $cleanup; then
  { [ -n "$percent" ] && [ -z "$size" ]; } || { [ -z "$percent" ] && [ -n "$size" ]; } \
    || die "give exactly one of --percent and --size (or --cleanup)"
  [ -z "$percent" ] || [[ "$percent" =~ ^[0-9]+$ && "$percent" -le 100 ]] || die "--percent takes 0-100"
  [ -z "$hold" ] || [[ "$hold" =~ ^[0-9]+$ ]] || die "--hold takes whole seconds"
fi

victim="$(pick_pod "$pod")"
ballast="$data_dir/goqueue-chaos-ballast"
in_pod() { kube exec "$victim" -c "$CONTAINER" -- "$@"; }

remove() { in_pod rm -f "$ballast" && log "removed $ballast on $victim"; }
if $cleanup; then
  remove
  exit 0
fi

if [ -n "$percent" ]; then
  # df -P -k: 1024-byte blocks; size, used. The ballast makes used = percent % of size.
  read -r total used < <(in_pod df -P -k "$data_dir" | awk 'NR == 2 { print $2, $3 }')
  kib=$(( total * percent / 100 - used ))
  [ "$kib" -gt 0 ] || die "$victim's $data_dir is already ${used}/${total} KiB used, at or above ${percent}%"
  size="${kib}K"
fi

if $dry_run; then
  log "would write a ${size} ballast at $ballast on $victim"
  exit 0
fi
[ -z "$hold" ] || trap remove EXIT
in_pod sh -c "fallocate -l '$size' '$ballast' 2>/dev/null || dd if=/dev/zero of='$ballast' bs=1M count=\$(( \$(numfmt --from=iec '$size') / 1048576 )) status=none" \
  || log "the volume filled before the ballast reached ${size} (writes on $victim now fail with DISK_FULL)"
log "wrote a ${size} ballast at $ballast on $victim: $(in_pod df -h "$data_dir" | awk 'NR == 2 { print $5 " used" }')"
if [ -n "$hold" ]; then
  log "holding for ${hold}s"
  sleep "$hold"
fi
