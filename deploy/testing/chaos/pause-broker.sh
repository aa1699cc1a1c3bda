#!/usr/bin/env bash
# Freeze one GoQueue broker (SIGSTOP) for a while, then let it go on (SIGCONT): a long GC pause, a VM stall, a
# broker that is alive to the network (connections open, nothing answered) but does no work.
#
#   deploy/testing/chaos/pause-broker.sh [-n NAMESPACE] [-l SELECTOR] [--pod NAME] [--seconds 20]
#       [--debug-image busybox:1.36] [--dry-run]
#
# What to expect: within seconds the other brokers elect new leaders for its partitions and drop it from the ISRs;
# it cannot acknowledge anything meanwhile (it is cut off from the quorum, and frozen). On SIGCONT it finds it lost
# leadership (fenced by the leader epoch), truncates to the new leaders, catches up and rejoins the ISRs.
#
# Limits:
#   * `kubectl exec POD -- kill -STOP 1`: needs `kill` in the image and the broker as PID 1. The GoQueue image has
#     both (procps; ENTRYPOINT goqueue-broker), and runs as the same user as PID 1, so the signal is allowed.
#     Images without a shell or `kill` (distroless): pass --debug-image, which runs `kill` in an ephemeral debug
#     container sharing the broker's process namespace (kubectl debug --target; needs ephemeral containers,
#     Kubernetes 1.25+, and each use adds an ephemeral container to the pod until it is re-created).
#   * The liveness probe (charts/goqueue: every 10 s, timeout 5 s, 6 failures) restarts a broker frozen for about
#     a minute: pause for less to test a freeze and resume, for more to test the kubelet's restart.
#   * The local control plane of docs/CONTROL_PLANE.md serves no exec: there, `kill -STOP` the broker's process
#     (its pid is in the kubelet's containers/ directory) instead.
#   * The script always sends SIGCONT on exit (Ctrl-C included); if it is killed with SIGKILL itself, resume by
#     hand: kubectl exec -n NAMESPACE POD -- kill -CONT 1.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pod="" seconds=20 debug_image="" dry_run=false
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) NAMESPACE="$2"; shift 2 ;;
    -l|--selector) SELECTOR="$2"; shift 2 ;;
    --pod) pod="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --debug-image) debug_image="$2"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ ]] || die "--seconds takes whole seconds"

victim="$(pick_pod "$pod")"

signal() {
  if [ -n "$debug_image" ]; then
    kube debug "$victim" -q --image="$debug_image" --target="$CONTAINER" --profile=general -- kill "-$1" 1
  else
    kube exec "$victim" -c "$CONTAINER" -- kill "-$1" 1
  fi
}

if $dry_run; then
  log "would pause $victim for ${seconds}s"
  exit 0
fi
trap 'signal CONT && log "resumed $victim"' EXIT
signal STOP
log "paused $victim (SIGSTOP to PID 1) for ${seconds}s"
sleep "$seconds"
