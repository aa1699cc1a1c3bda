"""What every pod worker shares with the kubelet that owns it.

Why a separate object: pod workers need the API client, the node's identity,
the address pool, the storage controller and a way to ask for a DNS refresh,
but must not depend on the kubelet class that creates them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from goqueue_harness.kubeapi import KubeClient
from goqueue_harness.kubelet.addresses import AddressPool
from goqueue_harness.storage import StorageController

# Images have no entrypoint here (images are ignored); a container without
# `command` falls back to this map from the image's repository name.
DEFAULT_IMAGE_COMMANDS: Mapping[str, list[str]] = {
    "goqueue": ["goqueue-broker"],
    "goqueue-broker": ["goqueue-broker"],
    "goqueue-operator": ["goqueue-operator"],
}


@dataclass
class NodeContext:
    client: KubeClient
    node_name: str
    kubelet_dir: Path
    apiserver_port: int
    nss_wrapper: str
    base_env: Mapping[str, str]
    addresses: AddressPool
    storage: StorageController
    request_dns_refresh: Callable[[], None]  # soon, coalesced
    refresh_dns_now: Callable[[], None]  # before a pod's first process starts
    host_ip: str = "127.0.0.1"
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    token_ttl_s: int = 86400  # projected service-account tokens, renewed at 80 % of this (the kubelet's rule)
    image_commands: Mapping[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_IMAGE_COMMANDS))

    def pod_dir(self, uid: str) -> Path:
        return self.kubelet_dir / "pods" / uid

    def hosts_file(self, uid: str) -> Path:
        return self.pod_dir(uid) / "hosts"

    def log_dir(self, namespace: str, name: str, uid: str) -> Path:
        return self.kubelet_dir / "logs" / f"{namespace}_{name}_{uid}"

    def container_pid_file(self, uid: str, container: str) -> Path:
        return self.kubelet_dir / "containers" / f"{uid}_{container}.pid"
