"""Storage expansion: raise `spec.storage.size` and every broker's claim grows, the StatefulSet's claim template
follows (re-created with its pods orphaned), the data stays, and with an online resize no broker restarts."""

from __future__ import annotations

import json

import pytest
from operator_kube import apply, topic_manifest
from workloads import BROKERS, GoQueueCluster, wait_events

from goqueue.models import ProduceRecord
from goqueue_harness.quantity import parse_quantity
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

RESIZE_TIMEOUT_S = 300  # a wait, not a speed target: claims grow one at a time, slower on a loaded machine
TOPIC = "grow-data"


def claims(cluster: GoQueueCluster) -> dict[str, dict[str, str]]:
    """Claim name -> requested and actual size."""
    items = json.loads(cluster.kubectl("get", "pvc", "-l", "app.kubernetes.io/name=goqueue", "-o", "json"))["items"]
    return {c["metadata"]["name"]: {"request": c["spec"]["resources"]["requests"]["storage"],
                                    "capacity": (c["status"].get("capacity") or {}).get("storage", "")}
            for c in items}


def template_size(cluster: GoQueueCluster) -> str | None:
    sts = cluster.get("statefulset", cluster.name)
    if sts is None or sts["metadata"].get("deletionTimestamp"):
        return None
    size: str = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    return size


def test_raising_storage_size_expands_every_claim_and_keeps_the_data(cluster: GoQueueCluster) -> None:
    cluster.wait_ready()  # an earlier scenario's change (a roll) settled: the resize is all this one waits for
    current = parse_quantity((cluster.get() or {})["spec"]["storage"]["size"])
    target = f"{int(current // 2**30) + 1}Gi"
    apply(cluster.backend.kubectl, cluster.namespace, topic_manifest(TOPIC, partitions=2, replicationFactor=3))
    cluster.wait_resource("goqueuetopic", TOPIC)
    with cluster.client() as client:
        client.produce(TOPIC, [ProduceRecord(value=f"kept-{i}") for i in range(50)])
    before = cluster.pod_uids()

    cluster.apply(storage={"size": target})
    wait_until(lambda: {c["capacity"] for c in claims(cluster).values()} == {target}
               and len(claims(cluster)) == BROKERS, RESIZE_TIMEOUT_S, interval_s=1,
               message=f"every claim's capacity {target}")
    wait_until(lambda: cluster.status().get("storage") == {"size": target, "targetSize": target, "phase": "Idle"},
               RESIZE_TIMEOUT_S, interval_s=1, message="status.storage Idle at the new size")
    assert template_size(cluster) == target
    wait_events(cluster.backend, cluster.namespace, cluster.name, "ResizingClaims", "RecreatingStatefulSet", "Resized")
    cluster.wait_ready()
    # This backend's volumes grow online (no FileSystemResizePending), so the roller had nothing to restart.
    assert cluster.pod_uids() == before, "a broker was restarted by a resize that needed no restart"

    with cluster.client(2) as client:
        stored = client.describe_topic(TOPIC)
    assert sum(p.high_watermark for p in stored.partition_details) == 50
