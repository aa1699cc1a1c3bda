"""Binding pending pods to the one node, as kube-scheduler would.

Why in the kubelet: there is a single node, so scheduling reduces to "are this
pod's claims bound?" (the scheduler's volume-binding filter with ``Immediate``
claims) followed by a ``pods/binding``. Pods naming another ``schedulerName``
are left alone, so tests can still exercise a pending pod.
"""

from __future__ import annotations

from collections.abc import Callable

from goqueue_harness.kubeapi import JSON, ApiError, KubeClient, resource_path
from goqueue_harness.kubelet.container import now_rfc3339

DEFAULT_SCHEDULER = "default-scheduler"


def wants_scheduling(pod: JSON) -> bool:
    spec = pod["spec"]
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", DEFAULT_SCHEDULER) == DEFAULT_SCHEDULER
        and not pod["metadata"].get("deletionTimestamp")
        and pod.get("status", {}).get("phase", "Pending") == "Pending"
    )


def unbound_claims(pod: JSON, claim_phase: Callable[[str, str], str | None]) -> list[str]:
    """Names of claims the pod uses that are missing or not Bound."""
    ns = pod["metadata"]["namespace"]
    missing = []
    for volume in pod["spec"].get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim and claim_phase(ns, claim) != "Bound":
            missing.append(claim)
    return missing


async def schedule(client: KubeClient, pod: JSON, node_name: str,
                   claim_phase: Callable[[str, str], str | None]) -> bool:
    """Bind ``pod`` to ``node_name`` if its claims are bound; otherwise say why in PodScheduled."""
    meta = pod["metadata"]
    missing = unbound_claims(pod, claim_phase)
    try:
        if missing:
            message = ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims "
                       f"({', '.join(missing)})")
            conditions = pod.get("status", {}).get("conditions") or []
            if not any(c.get("type") == "PodScheduled" and c.get("message") == message for c in conditions):
                await client.patch(resource_path("v1", "pods", meta["namespace"], meta["name"], "status"), {
                    "metadata": {"uid": meta["uid"]},
                    "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                               "message": message, "lastTransitionTime": now_rfc3339()}]},
                })
            return False
        await client.create(resource_path("v1", "pods", meta["namespace"], meta["name"], "binding"), {
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        })
    except ApiError:
        return False  # the pod changed or vanished; the next event retries
    return True
