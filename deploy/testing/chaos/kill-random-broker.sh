#!/usr/bin/env bash
# Kill a random GoQueue broker on a schedule, and check the cluster heals each time.
#
#   deploy/testing/chaos/kill-random-broker.sh [-n NAMESPACE] [-l SELECTOR] [--interval SECONDS] [--count N]
#       [--mode delete|crash|evict] [--grace SECONDS] [--pod NAME] [--allow-degraded] [--dry-run]
#
# Each round: wait until every broker is Ready (never kill into a degraded cluster: with 3 brokers a second loss
# is a lost quorum), pick a broker, kill it, wait until it is back and Ready, sleep --interval. Modes:
#   delete  (default) delete the pod; the StatefulSet re-creates it, usually with a new IP. --grace 1 (the
#           default) gives it no time to drain: its leaderships move by election, not by controlled shutdown.
#           A larger grace is a normal restart (it hands its leaderships away first).
#   crash   SIGKILL the broker process (kubectl exec POD -- kill -KILL 1); the kubelet restarts the container in
#           the same pod: a crash or an OOM kill. Needs `kill` in the image (the GoQueue image has it).
#   evict   the Eviction API, as a node drain does: the PodDisruptionBudget decides (a refused eviction is logged
#           and the round skipped).
# Never a forced delete (--grace-period=0 --force): it removes the pod object while the broker may still run, so
# the replacement can start on the same volume beside it — StatefulSets promise at most one pod per identity only
# without --force.
#
# Run a load test beside it to see what clients notice (deploy/testing/load/goqueue_load.py reports any
# acknowledged record that was not consumed). Exit 0 after --count rounds; 1 if the cluster did not heal within
# GOQUEUE_READY_TIMEOUT_S (600); 2 on bad arguments. Environment: KUBECTL, GOQUEUE_NAMESPACE, GOQUEUE_SELECTOR.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

interval=60 count=0 mode=delete grace=1 pod="" allow_degraded=false dry_run=false
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) NAMESPACE="$2"; shift 2 ;;
    -l|--selector) SELECTOR="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --count) count="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --grace) grace="$2"; shift 2 ;;
    --pod) pod="$2"; shift 2 ;;
    --allow-degraded) allow_degraded=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ "$interval" =~ ^[0-9]+$ && "$count" =~ ^[0-9]+$ && "$grace" =~ ^[1-9][0-9]*$ ]] \
  || die "--interval and --count take whole numbers, --grace at least 1 second"
[[ "$mode" =~ ^(delete|crash|evict)$ ]] || die "--mode is delete, crash or evict"

kill_pod() {
  local victim="$1"
  case "$mode" in
    delete) kube delete pod "$victim" --grace-period="$grace" --wait=false >/dev/null ;;
    crash) kube exec "$victim" -c "$CONTAINER" -- kill -KILL 1 ;;
    evict)
      # The Eviction API honours the PodDisruptionBudget, as a node drain does.
      if ! kube create --raw "/api/v1/namespaces/$NAMESPACE/pods/$victim/eviction" -f - >/dev/null <<EOF
{"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "$victim", "namespace": "$NAMESPACE"},
 "deleteOptions": {"gracePeriodSeconds": $grace}}
EOF
      then
        log "eviction of $victim refused (PodDisruptionBudget?); skipping this round"
        return 1
      fi ;;
  esac
}

# Back means: a new pod (delete, evict) or a new container start (crash), and Ready.
incarnation() {
  kube get pod "$1" -o jsonpath='{.metadata.uid}/{.status.containerStatuses[0].restartCount}' 2>/dev/null || true
}

round=0
while [ "$count" -eq 0 ] || [ "$round" -lt "$count" ]; do
  round=$((round + 1))
  if ! $allow_degraded && ! all_ready; then
    log "round $round: waiting until every broker is Ready before killing one"
    wait_all_ready || exit 1
  fi
  victim="$(pick_pod "$pod")"
  before="$(incarnation "$victim")"
  if $dry_run; then
    log "round $round: would kill $victim (mode $mode, grace ${grace}s)"
  elif kill_pod "$victim"; then
    log "round $round: killed $victim (mode $mode, grace ${grace}s)"
    deadline=$((SECONDS + READY_TIMEOUT_S))
    until [ "$(incarnation "$victim")" != "$before" ] && pod_ready "$victim"; do
      [ "$SECONDS" -lt "$deadline" ] || { log "round $round: $victim not back and Ready after ${READY_TIMEOUT_S}s"; exit 1; }
      sleep 2
    done
    wait_all_ready || exit 1
    log "round $round: $victim is back; every broker is Ready"
  fi
  if [ "$count" -eq 0 ] || [ "$round" -lt "$count" ]; then
    sleep "$interval"
  fi
done
