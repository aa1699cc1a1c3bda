"""PodDisruptionBudget `<cluster>`: voluntary evictions (node drains) never take more brokers than Raft tolerates.

The metadata Raft group needs a majority: n brokers tolerate (n-1)//2 down (1 of 3, 2 of 5, none of 1 or 2).
spec.disruptionBudget.maxUnavailable is capped there, so a mistaken budget cannot let a drain break the quorum.
Unhealthy pods may always be evicted: a broker that is already down does not count toward the quorum anyway, and
keeping it would wedge node drains.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import labels
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.views import ClusterView


def quorum_tolerance(replicas: int) -> int:
    """Brokers that may be down while a majority of `replicas` stays up."""
    return max(replicas - 1, 0) // 2


def disruption_budget(cluster: ClusterView, replicas: int | None = None) -> int:
    """The PDB's maxUnavailable: what the spec asks, never more than the quorum of the brokers that run
    (`replicas`, default spec.replicas; while a scale-down is refused more brokers run than the spec says)."""
    running = cluster.spec.replicas if replicas is None else replicas
    return min(cluster.spec.disruption_budget.max_unavailable, quorum_tolerance(running))


def build_pdb(cluster: ClusterView, replicas: int | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": child_metadata(cluster, "pdb"),
        "spec": {
            "maxUnavailable": disruption_budget(cluster, replicas),
            "selector": {"matchLabels": labels.selector_labels(cluster.name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
