"""Topic lifecycle as a user drives it with kubectl: apply manifests, watch `kubectl get goqueuetopics`, write to
the topics, grow one, then delete both: `deletionPolicy: Delete` removes the topic from the brokers, the default
(Retain) keeps it and its messages."""

from __future__ import annotations

import pytest
import yaml
from operator_kube import try_apply
from workloads import GoQueueCluster

from goqueue.errors import TopicNotFound
from goqueue.models import ProduceRecord, TopicInfo
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

READY_S = 90


def manifests(cluster: GoQueueCluster, events_partitions: int) -> str:
    topics = [
        {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic", "metadata": {"name": "lc-events"},
         "spec": {"clusterRef": {"name": cluster.name}, "partitions": events_partitions, "replicationFactor": 3,
                  "deletionPolicy": "Delete", "config": {"minInsyncReplicas": 2, "retentionMaxAge": "2h"}}},
        {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic", "metadata": {"name": "lc-audit"},
         "spec": {"clusterRef": {"name": cluster.name}, "topicName": "lc.audit", "partitions": 1,
                  "replicationFactor": 2}},
    ]
    return yaml.safe_dump_all(topics)


def describe(cluster: GoQueueCluster, name: str) -> TopicInfo | None:
    with cluster.client() as client:
        try:
            return client.describe_topic(name)
        except TopicNotFound:
            return None


def table(cluster: GoQueueCluster) -> dict[str, list[str]]:
    """`kubectl get goqueuetopics` rows of this scenario's topics: CLUSTER PARTITIONS REPLICAS READY (other
    scenarios' topics share the namespace)."""
    lines = cluster.kubectl("get", "goqueuetopics").splitlines()
    if not lines:
        return {}  # "No resources found" (on stderr)
    assert lines[0].split() == ["NAME", "CLUSTER", "PARTITIONS", "REPLICAS", "READY", "AGE"], lines[0]
    return {row.split()[0]: row.split()[1:5] for row in lines[1:] if row.startswith("lc-")}


def test_topic_lifecycle_with_kubectl(cluster: GoQueueCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input_text=manifests(cluster, events_partitions=2))
    wait_until(lambda: (t := table(cluster)).get("lc-events", [""])[-1] == "True" and t.get("lc-audit", [""])[-1]
               == "True", READY_S, interval_s=0.5, message="both topics Ready in kubectl get goqueuetopics")
    assert table(cluster) == {"lc-events": [cluster.name, "2", "3", "True"],
                              "lc-audit": [cluster.name, "1", "2", "True"]}
    events = describe(cluster, "lc-events")
    assert events is not None
    assert (events.partitions, events.replication_factor, events.config.min_insync_replicas) == (2, 3, 2)
    assert events.config.retention_max_age_s == 7200
    audit = describe(cluster, "lc.audit")  # spec.topicName: the broker's name differs from the resource's
    assert audit is not None
    assert audit.replication_factor == 2

    with cluster.client(1) as client:
        client.produce("lc-events", [ProduceRecord(key=f"k{i}", value=f"event-{i}") for i in range(20)])
        client.produce("lc.audit", [ProduceRecord(value=f"audit-{i}") for i in range(5)])
    wait_until(lambda: (cluster.get("goqueuetopic", "lc-events") or {}).get("status", {}).get("messages") == 20,
               READY_S, message="status.messages of lc-events reaches 20")

    # Grow: only the spec changes; the operator adds partitions and the table follows.
    cluster.kubectl("apply", "-f", "-", input_text=manifests(cluster, events_partitions=4))
    wait_until(lambda: (t := describe(cluster, "lc-events")) is not None and t.partitions == 4, READY_S,
               message="lc-events grown to 4 partitions on the brokers")
    wait_until(lambda: (cluster.get("goqueuetopic", "lc-events") or {}).get("status", {}).get("partitions") == 4,
               READY_S, message="status.partitions 4")
    assert table(cluster)["lc-events"] == [cluster.name, "4", "3", "True"]
    grown = describe(cluster, "lc-events")
    assert grown is not None
    assert sum(p.high_watermark for p in grown.partition_details) == 20, "growing lost or moved records"

    # Shrinking is refused by the API server (CEL), before any broker sees it.
    shrink = yaml.safe_load_all(manifests(cluster, events_partitions=3))
    refused = try_apply(cluster.backend.kubectl, cluster.namespace, next(iter(shrink)))
    assert refused.returncode != 0
    assert "spec.partitions can never decrease" in refused.stderr
    assert table(cluster)["lc-events"][1] == "4"

    cluster.kubectl("delete", "goqueuetopics", "lc-events", "lc-audit", "--wait=true", "--timeout=90s")
    assert "lc-events" not in table(cluster)
    assert describe(cluster, "lc-events") is None, "deletionPolicy Delete left the topic on the brokers"
    kept = describe(cluster, "lc.audit")
    assert kept is not None, "deletionPolicy Retain (the default) deleted the topic"
    assert sum(p.high_watermark for p in kept.partition_details) == 5
