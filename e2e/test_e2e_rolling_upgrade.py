"""Rolling upgrade: change the GoQueueCluster's version and broker config while an acks=all producer writes. The
operator restarts every broker once, one at a time, Ready and caught up before the next; the new config reaches the
brokers; no acknowledged record is lost and writes continue afterwards."""

from __future__ import annotations

import time

import pytest
from operator_kube import apply, condition, is_true, topic_manifest
from workloads import BROKERS, AckedProducer, GoQueueCluster, verify_no_acknowledged_loss, wait_events

from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

ROLL_TIMEOUT_S = 300
TOPIC = "roll-stream"
PARTITIONS = 3
TARGET_VERSION = "0.1.1"


@pytest.mark.timeout(ROLL_TIMEOUT_S + 240)
def test_rolling_upgrade_under_acks_all_produce_loses_nothing(cluster: GoQueueCluster) -> None:
    apply(cluster.backend.kubectl, cluster.namespace,
          topic_manifest(TOPIC, partitions=PARTITIONS, replicationFactor=3, config={"minInsyncReplicas": 2}))
    cluster.wait_resource("goqueuetopic", TOPIC)
    before = cluster.pod_uids()
    producer = AckedProducer(cluster, TOPIC)
    producer.start()
    try:
        wait_until(lambda: producer.acknowledged() >= 200, 60, message="200 acknowledged writes before the roll")
        started = time.monotonic()
        cluster.apply(version=TARGET_VERSION, config={"retention.maxAge": "72h"})

        def rolled() -> bool:
            found = cluster.get()
            status = (found or {}).get("status") or {}
            return (status.get("version") == TARGET_VERSION and is_true(found, "Ready")
                    and condition(found, "Upgrading").get("status") == "False")

        wait_until(rolled, ROLL_TIMEOUT_S, interval_s=1,
                   message=f"every broker on {TARGET_VERSION}, Ready, no longer Upgrading")
        roll_s = time.monotonic() - started
        acknowledged_at_end = producer.acknowledged()
        wait_until(lambda: producer.acknowledged() >= acknowledged_at_end + 200, 60,
                   message="writes continue after the roll")
    finally:
        producer.stop()
    assert not producer.errors, f"non-retriable produce errors during the roll: {producer.errors[:5]}"

    after = cluster.pod_uids()
    assert sorted(after) == sorted(before) == [f"goqueue-{i}" for i in range(BROKERS)]
    assert all(after[name] != uid for name, uid in before.items()), "a broker was not restarted"
    wait_events(cluster.backend, cluster.namespace, cluster.name, "BrokerRestarting", "BrokerCaughtUp",
                "RolloutComplete")
    settings = cluster.get("configmap", "goqueue-config")
    assert settings is not None
    assert "maxAge: 72h" in settings["data"]["goqueue.yaml"]
    for name in after:  # the pods run the new revision's version label
        pod = cluster.get("pod", name)
        assert pod is not None
        assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == TARGET_VERSION

    verify_no_acknowledged_loss(cluster, producer.history, TOPIC, PARTITIONS)
    print(f"\nrolling upgrade of {BROKERS} brokers: {roll_s:.0f} s; {producer.acknowledged()} acknowledged writes, "
          f"{producer.failures} refused or retried requests")
