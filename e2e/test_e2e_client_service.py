"""Produce and consume through the client Service `goqueue`, as an application in the cluster does.

The client is a pod running goqueue-cli against `http://goqueue:8080` (produce) and the Service's full name
`goqueue.<ns>.svc.cluster.local` (consume). On kind the names resolve through cluster DNS; on the local backend
through the harness's per-pod hosts file (Service names map to the Service's Ready pods; kubectl exec and ClusterIPs
do not exist there, so a client *pod* is the way in, and this test process itself uses pod IPs).
"""

from __future__ import annotations

import json

import pytest
from operator_kube import apply, topic_manifest
from workloads import GoQueueCluster, run_client_pod

from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

RECORDS = 60


def test_produce_and_consume_through_the_client_service(cluster: GoQueueCluster) -> None:
    topic, group = "svc-orders", "svc-readers"
    apply(cluster.backend.kubectl, cluster.namespace, topic_manifest(topic, partitions=3, replicationFactor=3))
    cluster.wait_resource("goqueuetopic", topic)

    fqdn = f"goqueue.{cluster.namespace}.svc.cluster.local"
    script = (
        "set -eu; "
        f"seq 1 {RECORDS} | sed 's/^/order-/' | goqueue-cli --server http://goqueue:8080 produce --topic {topic}; "
        f"goqueue-cli --server http://{fqdn}:8080 -o json consume --topic {topic} --group {group} "
        f"--from-beginning --max {RECORDS} --ack --timeout 30"
    )
    log = run_client_pod(cluster.backend, cluster.namespace, "svc-client", script)

    consumed = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "value" in record:
            consumed.append(record["value"])
    assert sorted(consumed) == sorted(f"order-{i}" for i in range(1, RECORDS + 1)), log[-3000:]

    # The brokers agree: every record is stored once, and the group's acknowledgements committed all of them.
    with cluster.client() as client:
        stored = client.describe_topic(topic)
        assert sum(p.high_watermark for p in stored.partition_details) == RECORDS

        def all_committed() -> bool:
            offsets = [o for o in client.describe_group(group).offsets if o.topic == topic]
            return bool(offsets) and all(o.committed == o.end_offset for o in offsets)

        wait_until(all_committed, 30, message=f"{group} committed every record of {topic}")
