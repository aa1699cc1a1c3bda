#!/usr/bin/env bash
# Debian base images made from Debian packages, for machines where no registry can be pulled from
# (docs/KIND.md). Each is `mmdebstrap` of bookworm + `docker import`, tagged goqueue-local/<name>:<hash of its
# recipe>, so a changed recipe builds a new image and an unchanged one is reused. A failed build leaves no tag.
#
# Usage: harness/kind/base_images.sh python|tools|node   -> prints the image reference
#   python  stands in for python:3.11-slim-bookworm (Dockerfile.broker, Dockerfile.operator): Debian's Python 3.11
#           with pip, installing system-wide as the official image does
#   tools   Debian + iptables/nftables/conntrack: kube-proxy's image and the local-path helper's
#   node    the kind node's operating system: systemd and what kind's base image installs
set -euo pipefail
what="${1:?usage: base_images.sh python|tools|node}"
suite=bookworm
case "${what}" in
  python) include="python3,python3-pip,python-is-python3,ca-certificates"
          changes='CMD ["python3"]' ;;
  tools)  include="iptables,nftables,conntrack,ipset,iproute2,kmod,ca-certificates"
          changes='CMD ["/bin/bash"]' ;;
  node)   include="systemd,systemd-sysv,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod"
          include+=",libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,socat,ebtables"
          changes='CMD ["/sbin/init"]' ;;
  *) echo "base_images.sh: unknown base '${what}' (python, tools or node)" >&2; exit 2 ;;
esac
# The python base drops Debian's EXTERNALLY-MANAGED marker: like the official image, pip installs system-wide.
hook='--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED; rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
# This machine's extra trusted CAs (a TLS-intercepting egress proxy's, say) go into every base, so pip and apt inside
# `docker build` trust what the host trusts; pip is pointed at the system bundle (a pip upgraded from PyPI would
# otherwise use its own certifi copy).
cas=(/usr/local/share/ca-certificates/*.crt)
[[ -e "${cas[0]}" ]] || cas=()
ca_hook='--customize-hook=for ca in '"${cas[*]:-}"'; do cp "$ca" "$1"/usr/local/share/ca-certificates/; done; chroot "$1" update-ca-certificates >/dev/null'
env_change='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt'
tag="$(printf '%s|%s|%s|%s|%s|%s' "${suite}" "${include}" "${changes}" "${hook}" "${env_change}" "${ca_hook}" \
  | cat - "${cas[@]}" | sha256sum | cut -c1-12)"
image="goqueue-local/${what}:${tag}"
if docker image inspect "${image}" >/dev/null 2>&1; then echo "${image}"; exit 0; fi
command -v mmdebstrap >/dev/null || { echo "base_images.sh: mmdebstrap is not installed (apt-get install mmdebstrap)" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "${tmp}"' EXIT
echo "base_images.sh: mmdebstrap ${suite} (${what}: ${include})" >&2
mmdebstrap --quiet --variant=minbase --include="${include}" "${ca_hook}" "${hook}" "${suite}" "${tmp}/rootfs.tar" >&2
docker import --change "${changes}" --change "${env_change}" \
  "${tmp}/rootfs.tar" "${image}" >/dev/null
echo "${image}"
