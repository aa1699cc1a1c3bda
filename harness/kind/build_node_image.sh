#!/usr/bin/env bash
# A kind node image for the pinned Kubernetes version, built on a machine where no registry can be pulled from
# (docs/KIND.md). Everything in it comes from Debian packages (base_images.sh) and Go modules
# (build_binaries.sh kind); `kind create cluster --image <it>` then pulls nothing.
#
# What kind's `kind build node-image` does, done here step by step because its builder pulls every required image
# that is not one of the four control-plane tars (etcd, CoreDNS, pause, kindnetd, the local-path images):
#   1. the node base (images/Dockerfile.node-base: kind's base image recipe on the local Debian root file system);
#   2. an image per component, tagged exactly as kubeadm v1.36 and kind's manifests name them;
#   3. a container of the base: kubeadm/kubelet/kubectl copied in, /kind/version and /kind/manifests written,
#      containerd started, every image imported (pinned, as kind does), containerd stopped, `docker commit`.
# Pod networking is a static ptp conflist (kindnetd is not served): single-node clusters only.
#
# Cached by content: the image tag is a hash of the versions, the binaries and this recipe, so an unchanged recipe
# is reused and a changed one rebuilds. A build that fails half-way leaves no tag (the commit is the last step) and
# its build container is removed, so the next run starts clean.
#
# Usage: harness/kind/build_node_image.sh   -> prints the node image reference on its last line
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../versions.env
source "${here}/../versions.env"
started=$(date +%s)
log() { printf '[build_node_image %4ds] %s\n' "$(( $(date +%s) - started ))" "$*" >&2; }

bin_dir="$(bash "${here}/../build_binaries.sh" | tail -1)"
node_dir="$(bash "${here}/../build_binaries.sh" kind | tail -1)"
kind_src="$(go mod download -json "sigs.k8s.io/kind@${KIND_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -d "${kind_src}/images/base/files" ]] || { log "kind ${KIND_VERSION}'s module has no images/base/files"; exit 1; }

key="$(cat "${here}/build_node_image.sh" "${here}/images/"* "${here}/base_images.sh" "${here}/../versions.env" \
        "${node_dir}/.complete" "${bin_dir}/.complete" | sha256sum | cut -c1-12)"
# GOQUEUE_KIND_NODE_IMAGE_REPO: another repository (the harness's tests build a throwaway one).
image="${GOQUEUE_KIND_NODE_IMAGE_REPO:-goqueue-local/kind-node}:${KUBERNETES_VERSION}-${key}"
if docker image inspect "${image}" >/dev/null 2>&1; then echo "${image}"; exit 0; fi

ctx="$(mktemp -d)"
container=""
cleanup() {
  rm -rf "${ctx}"
  if [[ -n "${container}" ]]; then docker rm -f -v "${container}" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# --- 1. the node base ----------------------------------------------------------------------------------------------
rootfs="$(bash "${here}/base_images.sh" node | tail -1)"
tools="$(bash "${here}/base_images.sh" tools | tail -1)"
mkdir -p "${ctx}/base/bin"
cp -r "${kind_src}/images/base/files" "${ctx}/base/files"
chmod -R u+w "${ctx}/base/files"
cp "${node_dir}"/{containerd,containerd-shim-runc-v2,ctr,crictl,runc} "${ctx}/base/bin/"
cp -r "${node_dir}/cni" "${ctx}/base/bin/cni"
cp "${here}/images/10-goqueue-ptp.conflist" "${ctx}/base/"
sed "s/@PAUSE_VERSION@/${PAUSE_VERSION}/" "${here}/images/Dockerfile.node-base" > "${ctx}/base/Dockerfile"
base="goqueue-local/kind-base:${key}"
log "node base ${base} (from ${rootfs})"
docker build -q --build-arg "ROOTFS=${rootfs}" -t "${base}" "${ctx}/base" >/dev/null 2>"${ctx}/build.err" \
  || { cat "${ctx}/build.err" >&2; exit 1; }

# --- 2. component images --------------------------------------------------------------------------------------------
# image_from NAME TAG FROM ENTRYPOINT BINARY...: a Dockerfile generated per image, binaries in /usr/local/bin.
mkdir -p "${ctx}/images"
image_from() {
  local name="$1" tag="$2" from="$3" entrypoint="$4"; shift 4
  local dir="${ctx}/components/${name}"
  mkdir -p "${dir}/bin"
  local binary
  for binary in "$@"; do cp "${binary}" "${dir}/bin/"; done
  cp /etc/ssl/certs/ca-certificates.crt "${dir}/ca-certificates.crt"
  {
    echo "FROM ${from}"
    echo "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt"
    echo "COPY bin/ /usr/local/bin/"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    [[ -n "${entrypoint}" ]] && echo "ENTRYPOINT [\"${entrypoint}\"]"
    echo 'LABEL org.opencontainers.image.description="built locally by goqueue harness/kind/build_node_image.sh"'
  } > "${dir}/Dockerfile"
  docker build -q -t "${tag}" "${dir}" >/dev/null 2>"${ctx}/build.err" || { cat "${ctx}/build.err" >&2; exit 1; }
  docker save "${tag}" -o "${ctx}/images/${name}.tar"
  log "  ${tag}"
}
# kubeadm v1.36's list, with the versions versions.env pins (checked against kubeadm below).
registry=registry.k8s.io
kube_tag="${KUBERNETES_VERSION}"
expected=(
  "${registry}/kube-apiserver:${kube_tag}" "${registry}/kube-controller-manager:${kube_tag}"
  "${registry}/kube-scheduler:${kube_tag}" "${registry}/kube-proxy:${kube_tag}"
  "${registry}/coredns/coredns:${COREDNS_VERSION}" "${registry}/pause:${PAUSE_VERSION}"
  "${registry}/etcd:${ETCD_VERSION#v}-0"
)
listed="$("${node_dir}/kubeadm" config images list --kubernetes-version "${KUBERNETES_VERSION}" 2>/dev/null | sort)"
if [[ "${listed}" != "$(printf '%s\n' "${expected[@]}" | sort)" ]]; then
  log "kubeadm ${KUBERNETES_VERSION} deploys other images than versions.env pins:"
  log "  kubeadm: ${listed//$'\n'/ }"
  log "  pinned:  ${expected[*]}"
  exit 1
fi
log "component images"
image_from kube-apiserver "${expected[0]}" scratch "" "${bin_dir}/kube-apiserver"
image_from kube-controller-manager "${expected[1]}" scratch "" "${bin_dir}/kube-controller-manager"
image_from kube-scheduler "${expected[2]}" scratch "" "${node_dir}/kube-scheduler"
image_from kube-proxy "${expected[3]}" "${tools}" "" "${node_dir}/kube-proxy"
image_from coredns "${expected[4]}" scratch "/usr/local/bin/coredns" "${node_dir}/coredns"
image_from pause "${expected[5]}" scratch "/usr/local/bin/pause" "${node_dir}/pause"
image_from etcd "${expected[6]}" scratch "" "${bin_dir}/etcd"
# kind's default StorageClass (rancher.io/local-path), under the tags kind's manifest names.
storage_manifest="${ctx}/default-storage.yaml"
python3 "${here}/kind_manifest.py" "${kind_src}/pkg/build/nodeimage/const_storage.go" defaultStorageManifest \
  > "${storage_manifest}"
mapfile -t storage_images < <(python3 "${here}/kind_manifest.py" "${kind_src}/pkg/build/nodeimage/const_storage.go" \
  storageProvisionerImage storageHelperImage)
image_from local-path-provisioner "${storage_images[0]}" "${tools}" "" "${node_dir}/local-path-provisioner"
image_from local-path-helper "${storage_images[1]}" "${tools}" ""

# --- 3. the node image ---------------------------------------------------------------------------------------------
log "node image ${image}"
container="goqueue-node-build-$$"
docker run -d --name "${container}" --entrypoint=sleep --security-opt seccomp=unconfined "${base}" infinity >/dev/null
for binary in "${node_dir}/kubeadm" "${node_dir}/kubelet" "${bin_dir}/kubectl"; do
  docker cp "${binary}" "${container}:/usr/bin/$(basename "${binary}")"
done
docker exec "${container}" sh -c 'chown root:root /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl && chmod 0755 /usr/bin/kube*'
docker exec "${container}" mkdir -p /kind/manifests /kind/images
printf '%s' "${KUBERNETES_VERSION}" | docker exec -i "${container}" sh -c 'cat > /kind/version'
docker cp "${storage_manifest}" "${container}:/kind/manifests/default-storage.yaml"
# kind applies /kind/manifests/default-cni.yaml; the network is the static conflist of the base, so this only says so.
cat > "${ctx}/default-cni.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: goqueue-kind-network
  namespace: kube-system
data:
  README: >-
    Pod network of a node image built by goqueue's harness/kind/build_node_image.sh: the static ptp + host-local
    conflist /etc/cni/net.d/10-goqueue-ptp.conflist (subnet 10.244.0.0/24, single node). kindnetd is not used.
EOF
docker cp "${ctx}/default-cni.yaml" "${container}:/kind/manifests/default-cni.yaml"
docker exec "${container}" bash -c 'nohup containerd > /var/log/containerd-build.log 2>&1 &'
docker exec "${container}" bash -c 'for i in $(seq 1 30); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 1; done; cat /var/log/containerd-build.log; exit 1'
for tar in "${ctx}/images/"*.tar; do
  docker exec -i "${container}" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests - < "${tar}" >/dev/null 2>"${ctx}/import.err" || { cat "${ctx}/import.err" >&2; exit 1; }
done
imported="$(docker exec "${container}" ctr --namespace=k8s.io images list -q 2>/dev/null | grep -v '^sha256:' | sort)"
for want in "${expected[@]}" "${storage_images[@]}"; do
  grep -qx "${want}" <<<"${imported}" || { log "containerd did not import ${want}"; exit 1; }
done
docker exec "${container}" pkill containerd
# The build container's PID 1 is sleep, which never reaps: wait for containerd to stop answering, not to vanish.
docker exec "${container}" bash -c 'for i in $(seq 1 40); do ctr version >/dev/null 2>&1 || exit 0; sleep 0.5; done; exit 1'
docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' "${container}" "${image}" >/dev/null
log "done: ${image} ($(docker image inspect -f '{{.Size}}' "${image}" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "${image}"
