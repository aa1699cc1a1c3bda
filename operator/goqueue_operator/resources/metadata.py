"""Object metadata of a cluster's children: name, namespace, labels and the owner reference.

The owner reference (controller, blockOwnerDeletion) makes Kubernetes' garbage collector delete the children
with their GoQueueCluster; claims are not children (the StatefulSet creates them) and are kept.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator import API_VERSION
from goqueue_operator.resources import labels
from goqueue_operator.resources.names import Role, child_name
from goqueue_operator.views import ClusterView


def owner_reference(cluster: ClusterView) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "GoQueueCluster", "name": cluster.name, "uid": cluster.meta.uid,
            "controller": True, "blockOwnerDeletion": True}


def child_metadata(cluster: ClusterView, role: Role, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": child_name(cluster.name, role),
        "namespace": cluster.namespace,
        "labels": {**labels.common_labels(cluster.name, cluster.spec.version), **(extra_labels or {})},
        "ownerReferences": [owner_reference(cluster)],
    }
