"""In-cluster API credentials for pods: a kubeconfig beside the projected service-account token.

Why: client libraries read ``/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`` from a path
hard-coded in the library, which the path rewriting cannot reach and which cannot be created without root. The
ServiceAccount admission plugin still adds the ``kube-api-access-*`` projected volume (token, ca.crt,
namespace), and the kubelet writes it into the volume's host folder; so for a container that mounts that
folder, the kubelet also writes a ``kubeconfig`` there and points ``KUBECONFIG`` at it. Libraries that fall back
from in-cluster to kubeconfig loading (kopf's ``login_via_client``, ``kubernetes.config``, kubectl, client-go)
then authenticate as the pod's ServiceAccount, so RBAC applies as on a real cluster.

The kubeconfig names the token and CA by paths relative to itself (kubeconfig semantics), so the mount-path
rewriting of text files never touches it. The token lives 24 h and is renewed at 80 % of that (pod.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from goqueue_harness.kubelet.volumes import Mount

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBECONFIG_NAME = "kubeconfig"
TOKEN = "token"
CA = "ca.crt"


def service_account_folder(mounts: Sequence[Mount]) -> Path | None:
    """The host folder a container mounts at the in-cluster credentials path, if any."""
    for mount in mounts:
        if mount.mount_path.rstrip("/") == SERVICE_ACCOUNT_DIR:
            return mount.host_path
    return None


def kubeconfig_text(server: str, namespace: str, service_account: str) -> str:
    """A kubeconfig using the token and CA beside it (relative paths resolve against the kubeconfig's folder)."""
    user = f"system:serviceaccount:{namespace}:{service_account}"
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster", "cluster": {"server": server, "certificate-authority": CA}}],
        "users": [{"name": user, "user": {"tokenFile": TOKEN}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": user,
                                                        "namespace": namespace}}],
    }, sort_keys=False)


def in_cluster_env(mounts: Sequence[Mount], pod_env: Mapping[str, str], *, server: str, namespace: str,
                   service_account: str) -> dict[str, str]:
    """Write the kubeconfig into the mounted service-account folder; return ``{"KUBECONFIG": path}``.

    Nothing when the container does not mount the folder (``automountServiceAccountToken: false``), when the
    folder lacks a token or CA, or when the pod sets ``KUBECONFIG`` itself (its choice wins)."""
    folder = service_account_folder(mounts)
    if folder is None or "KUBECONFIG" in pod_env:
        return {}
    if not (folder / TOKEN).is_file() or not (folder / CA).is_file():
        return {}
    target = folder / KUBECONFIG_NAME
    text = kubeconfig_text(server, namespace, service_account)
    if not target.is_file() or target.read_text() != text:
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(target)  # atomic: a container reading it meanwhile never sees half a file
    return {"KUBECONFIG": str(target)}
