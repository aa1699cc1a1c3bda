#!/usr/bin/env bash
# Build the pinned upstream control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kubectl, helm) from their Go modules, cached under
# $HOME so only the first build on a machine is slow.
#
# Why from source: no package registry this machine reaches ships kube-apiserver;
# the Go module proxy serves k8s.io/kubernetes, etcd and helm. Why a wrapper
# module: k8s.io/kubernetes requires its staging modules (k8s.io/api, ...) at
# v0.0.0 with local `replace` directives, which `go install pkg@v` refuses. The
# wrapper requires k8s.io/kubernetes and replaces each staging module by its
# published v0.Y.Z release; the list is generated from the tag's own go.mod so a
# new staging module (1.36 added k8s.io/streaming) needs no edit here.
#
# Usage: harness/build_binaries.sh          (idempotent: a complete cache is reused)
#        harness/build_binaries.sh kind     (kind + a kind node's pieces, after the above; prints their dir)
#        GOQUEUE_K8S_BIN_CACHE=/path ...    (override the cache root)
# The last line of output is always the bin dir.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "${here}/versions.env"

command -v go >/dev/null || { echo "build_binaries: go is not installed" >&2; exit 1; }
go_version="$(go env GOVERSION)"
cache_root="${GOQUEUE_K8S_BIN_CACHE:-${HOME}/.cache/goqueue/k8s-bin}"
key="${KUBERNETES_VERSION}-${ETCD_VERSION}-${HELM_VERSION}-${go_version}"
bin_dir="${cache_root}/${key}"
marker="${bin_dir}/.complete"
work_root="${HOME}/.cache/goqueue/k8s-build/${key}"

if [[ -f "${marker}" && "${1:-}" != "kind" ]]; then
  echo "build_binaries: cached binaries are complete (${key}); nothing to build" >&2
  echo "${bin_dir}"
  exit 0
fi

started=$(date +%s)
log() { printf '[build_binaries %4ds] %s\n' "$(( $(date +%s) - started ))" "$*" >&2; }

free_kb=$(df -Pk "${HOME}" | awk 'NR==2 {print $4}')
if (( free_kb < 8 * 1024 * 1024 )); then
  log "warning: only $(( free_kb / 1024 )) MiB free under ${HOME}; the Go caches need several GB"
fi

mkdir -p "${bin_dir}" "${work_root}"
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"

# Count compiled packages from `go build -v` so a 30-minute build shows it is alive
# without flooding the log with thousands of package names.
progress() {
  awk -v what="$1" '
    /^go: downloading / { next }                       # module downloads: counted by go get, not here
    /^(go: |#|[^ ]+\.go:)/ { print; fflush(); next }   # errors verbatim
    { n++; if (n % 50 == 0) { printf "  %s: %d packages compiled (latest %s)\n", what, n, $0; fflush() } }
    END { printf "  %s: %d packages compiled\n", what, n }' >&2
}

# go_mod_path MODULE@VERSION -> path of that version's go.mod in the module cache.
go_mod_path() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'
}

# header_lines GOMOD -> the upstream `go` and `godebug` lines, copied into wrappers so
# the binaries keep the GODEBUG defaults upstream chose.
header_lines() { grep -E '^(go|godebug) ' "$1" || true; }

# quiet_go_get DIR PKG... -> `go get` in DIR; its output is shown only if it fails.
quiet_go_get() {
  local dir="$1"; shift
  local out="${dir}/go-get.log"
  if ! (cd "${dir}" && go get "$@" >"${out}" 2>&1); then
    grep -v '^go: downloading' "${out}" >&2; log "go get failed in ${dir}"; exit 1
  fi
  log "  $(grep -c '^go: downloading' "${out}" || true) modules downloaded"
}

build_kubernetes() {
  local out=("${bin_dir}/kube-apiserver" "${bin_dir}/kube-controller-manager" "${bin_dir}/kubectl")
  if [[ -x "${out[0]}" && -x "${out[1]}" && -x "${out[2]}" ]]; then
    log "kubernetes ${KUBERNETES_VERSION}: already built"; return
  fi
  local dir="${work_root}/kubernetes" gomod staging_ver major minor
  mkdir -p "${dir}"
  log "kubernetes ${KUBERNETES_VERSION}: resolving go.mod"
  gomod="$(go_mod_path "k8s.io/kubernetes@${KUBERNETES_VERSION}")"
  staging_ver="v0.${KUBERNETES_VERSION#v1.}"                 # v1.36.3 -> v0.36.3
  major=1; minor="$(cut -d. -f2 <<<"${KUBERNETES_VERSION#v}")"
  {
    echo "module goqueue.local/k8s-build"
    echo
    header_lines "${gomod}"
    echo
    echo "require k8s.io/kubernetes ${KUBERNETES_VERSION}"
    echo
    echo "// Generated from k8s.io/kubernetes@${KUBERNETES_VERSION}'s go.mod: every staging"
    echo "// module it requires at v0.0.0 is replaced by its published ${staging_ver}."
    echo "replace ("
    awk -v v="${staging_ver}" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { printf "\t%s => %s %s\n", $1, $1, v }' "${gomod}"
    echo ")"
  } > "${dir}/go.mod"
  log "kubernetes: wrapper go.mod has $(grep -c '=>' "${dir}/go.mod") staging replaces"
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  log "kubernetes: downloading modules (go get)"
  # Each package @version: a bare package path would mean @upgrade (a newer Kubernetes).
  quiet_go_get "${dir}" "${pkgs[@]/%/@${KUBERNETES_VERSION}}"
  grep -q "k8s.io/kubernetes ${KUBERNETES_VERSION}\$" "${dir}/go.mod" \
    || { log "go get moved k8s.io/kubernetes off ${KUBERNETES_VERSION}"; exit 1; }
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${p}.gitVersion=${KUBERNETES_VERSION} -X ${p}.gitMajor=${major} -X ${p}.gitMinor=${minor}"
    ld+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=1970-01-01T00:00:00Z"
  done
  log "kubernetes: compiling ${pkgs[*]##*/} in one go build (the slow part: ~5 min cold on 2 cores)"
  (cd "${dir}" && go build -v -trimpath -ldflags "${ld}" -o "${bin_dir}/" "${pkgs[@]}" 2>&1) | progress kubernetes
}

build_etcd() {
  if [[ -x "${bin_dir}/etcd" ]]; then log "etcd ${ETCD_VERSION}: already built"; return; fi
  # A separate wrapper so etcd and Kubernetes never bump each other's dependencies.
  local dir="${work_root}/etcd" gomod
  mkdir -p "${dir}"
  log "etcd ${ETCD_VERSION}: resolving go.mod"
  gomod="$(go_mod_path "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")"
  {
    echo "module goqueue.local/etcd-build"
    echo
    header_lines "${gomod}"
    echo
    echo "require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}"
    echo
    echo "// Generated from go.etcd.io/etcd/server/v3@${ETCD_VERSION}'s go.mod: each sibling module"
    echo "// it replaces by a local path is pinned to the same published version."
    echo "replace ("
    awk -v v="${ETCD_VERSION}" '
      /^replace \(/ { inrep = 1; next } inrep && /^\)/ { inrep = 0 }
      inrep && $2 == "=>" && $3 ~ /^\.\.?\// && $1 ~ /^go\.etcd\.io\/etcd\// { printf "\t%s => %s %s\n", $1, $1, v }' "${gomod}"
    echo ")"
  } > "${dir}/go.mod"
  quiet_go_get "${dir}" "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  local sha="${ETCD_VERSION}"
  log "etcd: compiling"
  (cd "${dir}" && go build -v -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${sha}" \
     -o "${bin_dir}/etcd" go.etcd.io/etcd/server/v3 2>&1) | progress etcd
}

build_helm() {
  if [[ -x "${bin_dir}/helm" ]]; then log "helm ${HELM_VERSION}: already built"; return; fi
  local gomod client_go k8s_minor ld
  gomod="$(go_mod_path "helm.sh/helm/v3@${HELM_VERSION}")"
  # helm's Makefile stamps the Kubernetes version its client-go targets (v0.Y.Z -> 1.Y).
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "${gomod}")"
  k8s_minor="$(cut -d. -f2 <<<"${client_go#v}")"
  ld="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld+=" -X ${p}.k8sVersionMajor=1 -X ${p}.k8sVersionMinor=${k8s_minor}"
  done
  log "helm ${HELM_VERSION}: compiling (client-go ${client_go})"
  # `go install pkg@version` ignores the current module, hence GOFLAGS without -mod=mod.
  GOFLAGS="-buildvcs=false" GOBIN="${bin_dir}" go install -v -trimpath -ldflags "${ld}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" 2>&1 | progress helm
}

# --- kind and a kind node's pieces (`build_binaries.sh kind`) ---------------------------------------------------
# kind itself goes next to kubectl and helm; what only runs inside a node (containerd, runc, crictl, CNI plugins,
# kubelet, kubeadm, kube-proxy, kube-scheduler, CoreDNS, the local-path provisioner, pause) goes to node/.
# harness/kind/build_node_image.sh turns node/ into a kind node image.
kind_key="$(printf '%s\n' "${KIND_VERSION}" "${CONTAINERD_VERSION}" "${RUNC_VERSION}" "${CRICTL_VERSION}" \
  "${CNI_PLUGINS_VERSION}" "${COREDNS_VERSION}" "${PAUSE_VERSION}" "${LOCAL_PATH_PROVISIONER_VERSION}" | sha256sum | cut -c1-12)"
node_dir="${bin_dir}/node-${kind_key}"
kind_marker="${node_dir}/.complete"

# go_install BINARY_DIR PKG@VERSION [go flags...] -> `go install` into BINARY_DIR (no module of ours involved).
go_install() {
  local into="$1" pkg="$2"; shift 2
  local name="${pkg%@*}"; name="${name##*/}"
  if [[ -x "${into}/${name}" ]]; then log "${name}: already built"; return; fi
  log "${name}: go install ${pkg}"
  GOFLAGS="-buildvcs=false" GOBIN="${into}" go install -v -trimpath "$@" "${pkg}" 2>&1 | progress "${name}"
  [[ -x "${into}/${name}" ]] || { log "${name}: go install produced nothing"; exit 1; }
}

build_kind_bits() {
  mkdir -p "${node_dir}"
  go_install "${bin_dir}" "sigs.k8s.io/kind@${KIND_VERSION}" -ldflags "-s -w"
  # Static builds (CGO_ENABLED=0) run in any image; runc needs cgo for seccomp (libseccomp2 is in the node image).
  local ctrd
  for ctrd in containerd containerd-shim-runc-v2 ctr; do
    go_install "${node_dir}" "github.com/containerd/containerd/v2/cmd/${ctrd}@${CONTAINERD_VERSION}" \
      -tags "no_btrfs no_devmapper no_zfs no_aufs" -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${CONTAINERD_VERSION}"
  done
  command -v pkg-config >/dev/null && pkg-config --exists libseccomp \
    || { log "runc needs libseccomp-dev and pkg-config (apt-get install libseccomp-dev pkg-config)"; exit 1; }
  CGO_ENABLED=1 go_install "${node_dir}" "github.com/opencontainers/runc@${RUNC_VERSION}" -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}"
  go_install "${node_dir}" "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}" \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}"
  mkdir -p "${node_dir}/cni"
  local plugin
  for plugin in ipam/host-local main/loopback main/ptp meta/portmap; do
    go_install "${node_dir}/cni" "github.com/containernetworking/plugins/plugins/${plugin}@${CNI_PLUGINS_VERSION}" -ldflags "-s -w"
  done
  go_install "${node_dir}" "github.com/coredns/coredns@${COREDNS_VERSION}" -ldflags "-s -w"
  go_install "${node_dir}" "github.com/rancher/local-path-provisioner@${LOCAL_PATH_PROVISIONER_VERSION}" -ldflags "-s -w"
  build_kubernetes_node
  build_pause
  printf 'built_at=%s\n' "$(date -u +%FT%TZ)" > "${kind_marker}"
}

# The node's Kubernetes binaries, in the control plane's wrapper module (same replaces, same ldflags).
build_kubernetes_node() {
  local names=(kubelet kubeadm kube-proxy kube-scheduler) name missing=0
  for name in "${names[@]}"; do [[ -x "${node_dir}/${name}" ]] || missing=1; done
  if (( ! missing )); then log "kubernetes node binaries: already built"; return; fi
  local dir="${work_root}/kubernetes" pkgs=() ld major=1 minor
  [[ -f "${dir}/go.mod" ]] || { log "the Kubernetes wrapper module is missing: build the control plane first"; exit 1; }
  minor="$(cut -d. -f2 <<<"${KUBERNETES_VERSION#v}")"
  for name in "${names[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${name}"); done
  quiet_go_get "${dir}" "${pkgs[@]/%/@${KUBERNETES_VERSION}}"
  grep -q "k8s.io/kubernetes ${KUBERNETES_VERSION}\$" "${dir}/go.mod" \
    || { log "go get moved k8s.io/kubernetes off ${KUBERNETES_VERSION}"; exit 1; }
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X ${p}.gitVersion=${KUBERNETES_VERSION} -X ${p}.gitMajor=${major} -X ${p}.gitMinor=${minor}"
    ld+=" -X ${p}.gitTreeState=clean -X ${p}.buildDate=1970-01-01T00:00:00Z"
  done
  log "kubernetes node: compiling ${names[*]}"
  (cd "${dir}" && go build -v -trimpath -ldflags "${ld}" -o "${node_dir}/" "${pkgs[@]}" 2>&1) | progress kubernetes-node
}

# pause is C (k8s.io/kubernetes/build/pause/linux/pause.c), built static like upstream's.
build_pause() {
  if [[ -x "${node_dir}/pause" ]]; then log "pause: already built"; return; fi
  local src
  src="$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  command -v gcc >/dev/null || { log "pause needs gcc"; exit 1; }
  gcc -Os -Wall -Werror -static -DVERSION="v${PAUSE_VERSION}-goqueue" -o "${node_dir}/pause" \
    "${src}/build/pause/linux/pause.c"
  strip "${node_dir}/pause"
  log "pause: built"
}

if [[ "${1:-}" == "kind" ]]; then
  if [[ -f "${kind_marker}" ]]; then
    echo "build_binaries: cached kind binaries are complete (${kind_key}); nothing to build" >&2
    echo "${node_dir}"; exit 0
  fi
  [[ -f "${marker}" ]] || { echo "build_binaries: build the control plane first (harness/build_binaries.sh)" >&2; exit 1; }
  started=$(date +%s)
  log "building kind ${KIND_VERSION} and the node pieces into ${node_dir}"
  build_kind_bits
  "${bin_dir}/kind" version >&2
  "${node_dir}/containerd" --version >&2
  "${node_dir}/kubelet" --version >&2
  log "done in $(( $(date +%s) - started ))s"
  echo "${node_dir}"
  exit 0
fi

log "building ${key} into ${bin_dir} ($(nproc) cores)"
build_etcd
build_helm
build_kubernetes

log "verifying versions"
"${bin_dir}/etcd" --version | awk 'NR == 1' >&2   # awk reads all: `head` would SIGPIPE etcd under pipefail
"${bin_dir}/kube-apiserver" --version >&2
"${bin_dir}/kube-controller-manager" --version >&2
"${bin_dir}/kubectl" version --client >&2
"${bin_dir}/helm" version --short >&2
"${bin_dir}/kube-apiserver" --version | grep -qx "Kubernetes ${KUBERNETES_VERSION}" \
  || { log "kube-apiserver does not report ${KUBERNETES_VERSION}"; exit 1; }

elapsed=$(( $(date +%s) - started ))
printf 'built_at=%s\nelapsed_s=%d\ngo=%s\n' "$(date -u +%FT%TZ)" "${elapsed}" "${go_version}" > "${marker}"
log "done in $(( elapsed / 60 ))m$(( elapsed % 60 ))s"
echo "${bin_dir}"
