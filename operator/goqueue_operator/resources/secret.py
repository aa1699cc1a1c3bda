"""Secret `<cluster>-raft`: the metadata Raft password (PySyncObj's wire format is pickle: never run without one).

Generated once: the password is an argument (randomness stays in the shell, `handlers/cluster.py`), and the
Secret is applied create-only (`children.CREATE_ONLY_KINDS`) and immutable, so no reconcile ever replaces the
password running brokers share.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import RAFT_PASSWORD_KEY, Role
from goqueue_operator.views import ClusterView


def build_secret(cluster: ClusterView, password: str) -> dict[str, Any]:
    assert len(password) >= 32, "a Raft password must be long and random"
    return generated_secret(cluster, "raft-secret", {RAFT_PASSWORD_KEY: password})


def generated_secret(cluster: ClusterView, role: Role, data: dict[str, str]) -> dict[str, Any]:
    """A Secret the operator generates once for `cluster` (applied create-only, immutable, owned by the cluster)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": child_metadata(cluster, role),
        "type": "Opaque",
        "immutable": True,
        "stringData": data,
    }
