"""A GoQueueConsumerGroup as on-call uses it: read the lag in `kubectl get goqueueconsumergroups`, pause the
consumers declaratively (`spec.paused`) and resume them, then replay with `spec.offsetResets` entries, each applied
exactly once by its id."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from operator_kube import apply, condition, group_manifest, topic_manifest
from workloads import GoQueueCluster, wait_events

from goqueue.models import ConsumeRequest, GroupInfo, ProduceRecord
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

READY_S = 90
TOPIC, GROUP = "grp-jobs", "grp-workers"


def declare(cluster: GoQueueCluster, **spec: Any) -> None:
    """The group; members silent for 5 s are removed (the default 30 s would make the blocked reset wait long)."""
    apply(cluster.backend.kubectl, cluster.namespace, group_manifest(GROUP, topics=[TOPIC], mode="shared",
                                                                     sessionTimeout="5s", **spec))


def describe(cluster: GoQueueCluster) -> GroupInfo:
    with cluster.client() as client:
        return client.describe_group(GROUP)


def committed(cluster: GoQueueCluster) -> int | None:
    offsets = [o.committed for o in describe(cluster).offsets if o.topic == TOPIC]
    return offsets[0] if offsets else None


def consume(cluster: GoQueueCluster, expected: int) -> list[str]:
    """Consume and acknowledge until `expected` records arrived."""
    values: list[str] = []

    def more() -> bool:
        with cluster.client(2) as client:
            batch = client.consume(GROUP, ConsumeRequest(consumer_id="e2e-worker", topic=TOPIC, max_records=50,
                                                         wait_ms=200))
            if batch.records:
                client.ack(GROUP, [r.lease_id for r in batch.records if r.lease_id])
                values.extend(r.value or "" for r in batch.records)
        return len(values) >= expected

    wait_until(more, 60, message=f"{expected} records of {TOPIC}")
    return values


def row(cluster: GoQueueCluster) -> list[str]:
    """`kubectl get goqueueconsumergroups` row: NAME CLUSTER TOPICS LAG PAUSED READY AGE."""
    lines = cluster.kubectl("get", "goqueueconsumergroups", GROUP).splitlines()
    assert lines[0].split()[:6] == ["NAME", "CLUSTER", "TOPICS", "LAG", "PAUSED", "READY"], lines[0]
    return lines[1].split()[:6]


def reset_phase(cluster: GoQueueCluster, reset_id: str) -> str | None:
    status = (cluster.get("goqueueconsumergroup", GROUP) or {}).get("status") or {}
    return next((e["phase"] for e in status.get("offsetResets") or [] if e["id"] == reset_id), None)


def test_consumer_pause_and_offset_reset(cluster: GoQueueCluster) -> None:
    apply(cluster.backend.kubectl, cluster.namespace, topic_manifest(TOPIC, partitions=1, replicationFactor=3))
    cluster.wait_resource("goqueuetopic", TOPIC)
    declare(cluster)
    cluster.wait_resource("goqueueconsumergroup", GROUP)
    with cluster.client(1) as client:
        client.produce(TOPIC, [ProduceRecord(value=f"job-{i}") for i in range(10)])
    assert consume(cluster, 10) == [f"job-{i}" for i in range(10)]
    wait_until(lambda: row(cluster)[3:6] == ["0", "false", "True"], READY_S, interval_s=0.5,
               message="kubectl shows lag 0, not paused, Ready")

    # Pause: the brokers stop delivering; the lag of new records shows in kubectl.
    declare(cluster, paused=True)
    wait_until(lambda: describe(cluster).paused, READY_S, message="group paused on the brokers")
    with cluster.client(1) as client:
        client.produce(TOPIC, [ProduceRecord(value=f"job-{i}") for i in range(10, 15)])
        assert client.consume(GROUP, ConsumeRequest(consumer_id="e2e-worker", topic=TOPIC, wait_ms=200)).paused
    wait_until(lambda: row(cluster)[3:5] == ["5", "true"], READY_S, interval_s=0.5,
               message="kubectl shows lag 5, paused")

    # Resume: the five waiting records arrive.
    declare(cluster, paused=False)
    wait_until(lambda: not describe(cluster).paused, READY_S, message="group resumed")
    assert consume(cluster, 5) == [f"job-{i}" for i in range(10, 15)]
    wait_until(lambda: committed(cluster) == 15, 30, message="committed 15")
    wait_events(cluster.backend, cluster.namespace, GROUP, "GroupPaused", "GroupResumed")

    # Replay from the start, once. While a consumer is live the reset waits (it would pull the records from under
    # it); when the consumer is gone (its session times out), the reset is applied.
    with LiveConsumer(cluster) as live:
        resets: list[dict[str, Any]] = [{"id": "replay-all", "topic": TOPIC, "to": "earliest"}]
        declare(cluster, offsetResets=resets)
        blocked = cluster.wait_resource("goqueueconsumergroup", GROUP, "OffsetResetBlocked", READY_S)
        assert condition(blocked, "OffsetResetBlocked")["reason"] == "GroupHasMembers"
        assert reset_phase(cluster, "replay-all") != "Applied"
        assert committed(cluster) == 15, "the reset was applied while a member was live"
        assert live.polls > 0
    wait_until(lambda: reset_phase(cluster, "replay-all") == "Applied", READY_S, message="replay-all Applied")
    assert committed(cluster) == 0
    assert consume(cluster, 15) == [f"job-{i}" for i in range(15)]
    wait_until(lambda: committed(cluster) == 15, 30, message="committed 15 after the replay")

    # A new id is a new reset; `force` applies it even with the consumer still a member. The first reset is not
    # applied again.
    resets.append({"id": "skip-to-12", "topic": TOPIC, "partition": 0, "to": "offset", "offset": 12, "force": True})
    declare(cluster, offsetResets=resets)
    wait_until(lambda: reset_phase(cluster, "skip-to-12") == "Applied", READY_S, message="skip-to-12 Applied")
    assert committed(cluster) == 12
    assert consume(cluster, 3) == [f"job-{i}" for i in range(12, 15)]
    wait_until(lambda: committed(cluster) == 15, 30, message="committed 15 after skip-to-12")
    wait_events(cluster.backend, cluster.namespace, GROUP, "OffsetReset")


class LiveConsumer(threading.Thread):
    """A member that keeps polling (long polls that find nothing), so the group has a live member."""

    def __init__(self, cluster: GoQueueCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.stopping = threading.Event()
        self.polls = 0

    def run(self) -> None:
        with self.cluster.client(2) as client:
            while not self.stopping.is_set():
                client.consume(GROUP, ConsumeRequest(consumer_id="e2e-live", topic=TOPIC, wait_ms=300))
                self.polls += 1

    def __enter__(self) -> LiveConsumer:
        self.start()
        wait_until(lambda: self.polls > 0, 30, message="the live consumer polling")
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.join(30)
