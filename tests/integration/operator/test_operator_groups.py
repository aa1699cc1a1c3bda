"""GoQueueConsumerGroup against running brokers: declared settings, declarative pause and resume, offset resets
applied exactly once by id."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import RunningCluster
from operator_kube import apply, get, group_manifest, topic_manifest, wait_condition, wait_events
from operator_process import OperatorProcess

from goqueue.models import ConsumeRequest, GroupInfo, ProduceRecord
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

READY_S = 60


def describe(cluster: RunningCluster, name: str) -> GroupInfo:
    with cluster.client() as client:
        return client.describe_group(name)


def committed(cluster: RunningCluster, group: str, topic: str) -> int | None:
    offsets = [o for o in describe(cluster, group).offsets if o.topic == topic]
    return offsets[0].committed if offsets else None


def consume_all(cluster: RunningCluster, group: str, topic: str, expected: int) -> list[str]:
    """Consume and ack until `expected` records arrived (shared mode)."""
    values: list[str] = []

    def more() -> bool:
        with cluster.client() as client:
            batch = client.consume(group, ConsumeRequest(consumer_id="test", topic=topic, max_records=100,
                                                         wait_ms=200))
            if batch.records:
                client.ack(group, [r.lease_id for r in batch.records if r.lease_id])
                values.extend(r.value or "" for r in batch.records)
        return len(values) >= expected

    wait_until(more, 30, message=f"{expected} records from {topic}")
    return values


def group_spec(**spec: Any) -> dict[str, Any]:
    return group_manifest("workers", topics=["jobs"], **spec)


def test_group_settings_pause_and_offset_resets(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("jobs", partitions=1, replicationFactor=3))
    wait_condition(kubectl, ns, "goqueuetopic", "jobs", "Ready", READY_S)
    apply(kubectl, ns, group_spec(visibilityTimeout="45s", maxDeliveries=3))
    ready = wait_condition(kubectl, ns, "goqueueconsumergroup", "workers", "Ready", READY_S)
    assert ready["status"]["paused"] is False
    live = describe(goqueue_cluster, "workers")
    assert (live.config.visibility_timeout_s, live.config.max_deliveries) == (45, 3)

    # Declarative pause and resume.
    apply(kubectl, ns, group_spec(visibilityTimeout="45s", maxDeliveries=3, paused=True))
    wait_until(lambda: describe(goqueue_cluster, "workers").paused, READY_S, message="group paused")
    with goqueue_cluster.client() as client:
        client.produce("jobs", [ProduceRecord(value=f"job-{i}") for i in range(10)])
        assert client.consume("workers", ConsumeRequest(consumer_id="test", topic="jobs")).paused
    wait_until(lambda: (get(kubectl, ns, "goqueueconsumergroup", "workers") or {}).get("status", {}).get("paused"),
               READY_S, message="status.paused")
    apply(kubectl, ns, group_spec(visibilityTimeout="45s", maxDeliveries=3, paused=False))
    wait_until(lambda: not describe(goqueue_cluster, "workers").paused, READY_S, message="group resumed")
    wait_events(kubectl, ns, "workers", "GroupPaused", "GroupResumed")

    # Everything consumed: lag 0 in status.
    assert consume_all(goqueue_cluster, "workers", "jobs", 10) == [f"job-{i}" for i in range(10)]
    wait_until(lambda: committed(goqueue_cluster, "workers", "jobs") == 10, 30, message="committed 10")
    wait_until(lambda: (get(kubectl, ns, "goqueueconsumergroup", "workers") or {}).get("status", {}).get("lag")
               == 0, 30, message="status.lag 0")

    # A reset to earliest is applied once: the group reads everything again, and only once.
    resets = [{"id": "replay-1", "topic": "jobs", "to": "earliest"}]
    apply(kubectl, ns, group_spec(visibilityTimeout="45s", maxDeliveries=3, offsetResets=resets))
    wait_until(lambda: _reset_phase(kubectl, ns, "replay-1") == "Applied", READY_S, message="replay-1 Applied")
    assert committed(goqueue_cluster, "workers", "jobs") == 0
    assert consume_all(goqueue_cluster, "workers", "jobs", 10) == [f"job-{i}" for i in range(10)]
    wait_until(lambda: committed(goqueue_cluster, "workers", "jobs") == 10, 30)
    reconciles = _group_reconciles(operator)
    kubectl("annotate", "goqueueconsumergroup", "workers", "-n", ns, "example.com/poke=1")
    wait_until(lambda: _group_reconciles(operator) >= reconciles + 2, 30,
               message="two more reconciles of the group after the reset")
    assert committed(goqueue_cluster, "workers", "jobs") == 10, "the reset was applied a second time"

    # A new id is a new reset.
    resets.append({"id": "replay-2", "topic": "jobs", "partition": 0, "to": "offset", "offset": 7})
    apply(kubectl, ns, group_spec(visibilityTimeout="45s", maxDeliveries=3, offsetResets=resets))
    wait_until(lambda: _reset_phase(kubectl, ns, "replay-2") == "Applied", READY_S, message="replay-2 Applied")
    assert committed(goqueue_cluster, "workers", "jobs") == 7
    entry = next(e for e in _status(kubectl, ns)["offsetResets"] if e["id"] == "replay-2")
    assert entry["partitions"] == [{"topic": "jobs", "partition": 0, "offset": 7}]
    wait_events(kubectl, ns, "workers", "OffsetReset")


def _group_reconciles(operator: OperatorProcess) -> float:
    prefix = 'goqueue_operator_reconciles_total{kind="GoQueueConsumerGroup",result="ok"}'
    return sum(float(line.split()[-1]) for line in operator.metrics().splitlines() if line.startswith(prefix))


def _status(kubectl: Kubectl, ns: str) -> dict[str, Any]:
    found: dict[str, Any] = (get(kubectl, ns, "goqueueconsumergroup", "workers") or {}).get("status", {})
    return found


def _reset_phase(kubectl: Kubectl, ns: str, reset_id: str) -> str | None:
    for entry in _status(kubectl, ns).get("offsetResets") or []:
        if entry["id"] == reset_id:
            phase: str = entry["phase"]
            return phase
    return None
