"""ConfigMap `<cluster>-config` (`goqueue-config`): the broker settings file, mounted at /etc/goqueue/goqueue.yaml.

Settings that are the same for every broker live here; per-pod ones (id, bind address, advertised name) and the
peer list and password come from the environment (`GOQUEUE_*` wins over the file). The file's hash is on the pod
template, so a settings change is a new StatefulSet revision and the operator rolls the brokers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from goqueue_operator.resources import ports
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import CONFIG_FILE_KEY
from goqueue_operator.views import ClusterView

SHUTDOWN_MARGIN_S = 10  # the broker drains this much before the kubelet's SIGKILL


def broker_settings(cluster: ClusterView) -> dict[str, dict[str, Any]]:
    """Nested settings: operator-managed keys, then spec.config (the CRD refuses managed keys there)."""
    grace = cluster.spec.pod.termination_grace_period_seconds
    settings: dict[str, dict[str, Any]] = {
        "broker": {"port": ports.HTTP_PORT, "grpcPort": ports.GRPC_PORT, "raftPort": ports.RAFT_PORT,
                   "shutdownGrace": f"{max(grace - SHUTDOWN_MARGIN_S, 5)}s"},
        "storage": {"dataDir": ports.DATA_DIR, "walDir": ports.WAL_DIR},
        "log": {"format": "json"},
    }
    for dotted, value in sorted(cluster.spec.config.items()):
        section, _, key = dotted.partition(".")
        settings.setdefault(section, {})[key] = value
    return settings


def render_settings(cluster: ClusterView) -> str:
    return yaml.safe_dump(broker_settings(cluster), sort_keys=True, default_flow_style=False)


def config_hash(cluster: ClusterView) -> str:
    """A short hash of the settings file, for the pod template annotation."""
    return hashlib.sha256(render_settings(cluster).encode()).hexdigest()[:16]


def build_configmap(cluster: ClusterView) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(cluster, "config"),
        "data": {CONFIG_FILE_KEY: render_settings(cluster)},
    }
