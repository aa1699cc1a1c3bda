# shellcheck shell=bash
# Shared by the GoQueue chaos scripts (sourced, not run). Every script works against any cluster kubectl reaches;
# nothing here is specific to one installation beyond the defaults (namespace goqueue, label
# app.kubernetes.io/name=goqueue, container broker — what charts/goqueue and the operator create).

KUBECTL="${KUBECTL:-kubectl}"
NAMESPACE="${GOQUEUE_NAMESPACE:-goqueue}"
SELECTOR="${GOQUEUE_SELECTOR:-app.kubernetes.io/name=goqueue}"
# shellcheck disable=SC2034  # used by the scripts that source this file
CONTAINER="${GOQUEUE_CONTAINER:-broker}"
READY_TIMEOUT_S="${GOQUEUE_READY_TIMEOUT_S:-600}"

log() { printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

kube() { "$KUBECTL" -n "$NAMESPACE" "$@"; }

# Names of the broker pods, one per line.
broker_pods() {
  kube get pods -l "$SELECTOR" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
}

# A random broker pod, or $1 when given (checked to be a broker).
pick_pod() {
  local wanted="${1:-}" pods
  pods="$(broker_pods)"
  [ -n "$pods" ] || die "no pod matches -l $SELECTOR in namespace $NAMESPACE"
  if [ -n "$wanted" ]; then
    grep -qx "$wanted" <<<"$pods" || die "$wanted is not a broker pod (-l $SELECTOR) in $NAMESPACE"
    echo "$wanted"
  else
    shuf -n 1 <<<"$pods"
  fi
}

pod_ready() {
  [ "$(kube get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = "True" ]
}

# Every broker pod exists, is not terminating and is Ready.
all_ready() {
  local pod total=0
  for pod in $(broker_pods); do
    total=$((total + 1))
    [ -z "$(kube get pod "$pod" -o jsonpath='{.metadata.deletionTimestamp}')" ] || return 1
    pod_ready "$pod" || return 1
  done
  [ "$total" -gt 0 ]
}

# Poll until all_ready, or fail after READY_TIMEOUT_S.
wait_all_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT_S))
  until all_ready; do
    [ "$SECONDS" -lt "$deadline" ] || { log "brokers not all Ready after ${READY_TIMEOUT_S}s"; return 1; }
    sleep 2
  done
}
