"""StatefulSet `<cluster>` (`goqueue`): the brokers.

- `OnDelete` updates: the StatefulSet controller never restarts a broker; the operator's roller does, one at a
  time, health-gated (roller/);
- `Parallel` pod management: a Raft quorum needs its peers up together; OrderedReady would wait for broker 0 to be
  ready, which may need a quorum;
- the claim template `goqueue-data` (claims `goqueue-data-<cluster>-<n>`) is immutable in a StatefulSet, so its
  size is the *applied* size recorded in status; a resize re-creates the StatefulSet (resize/);
- claims are retained on scale-down and deletion: data is deleted only by a person.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import labels
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import DATA_CLAIM_TEMPLATE, child_name
from goqueue_operator.resources.pod_template import build_pod_template
from goqueue_operator.resources.tls import TlsPhase
from goqueue_operator.views import ClusterView


def build_claim_template(cluster: ClusterView, size: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cluster.spec.storage.storage_class_name:
        spec["storageClassName"] = cluster.spec.storage.storage_class_name
    return {"metadata": {"name": DATA_CLAIM_TEMPLATE, "labels": labels.selector_labels(cluster.name)}, "spec": spec}


def build_statefulset(cluster: ClusterView, *, replicas: int | None = None,
                      claim_size: str | None = None, tls: TlsPhase | None = None) -> dict[str, Any]:
    """`replicas` is what scaling decided (default spec.replicas); `claim_size` the applied claim size; `tls`
    where turning TLS on or off stands (default: spec.tls as it is)."""
    replicas = cluster.spec.replicas if replicas is None else replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": child_metadata(cluster, "statefulset"),
        "spec": {
            "replicas": replicas,
            "serviceName": child_name(cluster.name, "headless"),
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": labels.selector_labels(cluster.name)},
            "template": build_pod_template(cluster, replicas, tls),
            "volumeClaimTemplates": [build_claim_template(cluster, claim_size or cluster.applied_storage_size)],
        },
    }
