"""A broker pod killed under acks=all load, with the runbook's own tools: deploy/testing/load/goqueue_load.py writes
and reads (a shared group) through brokers 1 and 2 while deploy/testing/chaos/kill-random-broker.sh deletes goqueue-0
and waits for it to come back. The StatefulSet re-creates the pod on the same claim and the operator reports the
cluster Ready again. Two guarantees are checked apart, so a failure says which broke:
* the log: an independent acks=all producer (any Ready broker, re-resolved as pods change) records every
  acknowledged (partition, offset, value); afterwards each is read back from the log at its offset;
* delivery: the load tool checks that its group was delivered every (partition, offset) it had acknowledged; when it
  was not, the group's state (inflight leases, committed offsets) is put in the failure message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from backends import REPO
from operator_kube import apply, topic_manifest
from workloads import AckedProducer, GoQueueCluster, verify_no_acknowledged_loss

from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

LOAD = REPO / "deploy" / "testing" / "load" / "goqueue_load.py"
KILL = REPO / "deploy" / "testing" / "chaos" / "kill-random-broker.sh"
HEAL_TIMEOUT_S = 180
TOPIC, GROUP = "kill-load", "kill-load-readers"
LOG_TOPIC = "kill-acked"
PARTITIONS = 6


@pytest.mark.timeout(HEAL_TIMEOUT_S + 300)
def load_credentials(cluster: GoQueueCluster) -> dict[str, str]:
    """The load tool authenticates as the CLIs do (anonymous access is off): the operator's principal."""
    credentials = cluster.credentials()
    password_file = Path(tempfile.mkdtemp(prefix="goqueue-e2e-")) / "password"
    password_file.write_text(credentials.password)
    password_file.chmod(0o600)
    return {"GOQUEUE_USER": credentials.user, "GOQUEUE_PASSWORD_FILE": str(password_file)}


def test_a_broker_pod_killed_under_load_loses_no_acknowledged_record(cluster: GoQueueCluster) -> None:
    for topic in (TOPIC, LOG_TOPIC):
        apply(cluster.backend.kubectl, cluster.namespace,
              topic_manifest(topic, partitions=PARTITIONS, replicationFactor=3, config={"minInsyncReplicas": 2}))
    for topic in (TOPIC, LOG_TOPIC):
        cluster.wait_resource("goqueuetopic", topic)
    victim = "goqueue-0"
    victim_uid = cluster.pod_uids()[victim]
    producer = AckedProducer(cluster, LOG_TOPIC)
    load = subprocess.Popen(
        [sys.executable, str(LOAD), "--server", cluster.url(1), "--server", cluster.url(2), "--topic", TOPIC,
         "--no-create-topic", "--group", GROUP, "--keep-group", "--acks", "all", "--rate", "300", "--duration", "25",
         "--batch", "20", "--record-size", "100", "--producers", "2", "--consumers", "2", "--drain-timeout", "90",
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **load_credentials(cluster)})
    producer.start()
    try:
        with cluster.client(1) as client:
            wait_until(lambda: sum(p.high_watermark for p in client.describe_topic(TOPIC).partition_details) > 500,
                       60, message="the load generator writing")
        killed = subprocess.run(
            ["bash", str(KILL), "--pod", victim, "--count", "1", "--interval", "0"], capture_output=True, text=True,
            timeout=HEAL_TIMEOUT_S + 60, check=False,
            env={**os.environ, "KUBECTL": str(cluster.backend.kubectl.binary),
                 "KUBECONFIG": str(cluster.backend.kubeconfig), "GOQUEUE_NAMESPACE": cluster.namespace,
                 "GOQUEUE_READY_TIMEOUT_S": str(HEAL_TIMEOUT_S)})
        assert killed.returncode == 0, killed.stderr
        assert f"round 1: killed {victim}" in killed.stderr
        assert f"round 1: {victim} is back; every broker is Ready" in killed.stderr
        acknowledged = producer.acknowledged()
        wait_until(lambda: producer.acknowledged() > acknowledged + 100, 60, message="writes after the kill")
        producer.stop()
        out, err = load.communicate(timeout=240)
    finally:
        producer.stop()
        if load.poll() is None:
            load.kill()
            load.wait()

    # The log: every write acknowledged to the independent producer is there, at its offset.
    assert not producer.errors, f"non-retriable produce errors: {producer.errors[:5]}"
    verify_no_acknowledged_loss(cluster, producer.history, LOG_TOPIC, PARTITIONS)

    # Delivery: the load tool's group got every acknowledged record.
    assert load.returncode in (0, 1), out + err
    report = json.loads(out)
    assert report["produce"]["records"] > 1000
    assert report["produce"]["failed_requests"] == 0, report["errors"]
    assert report["verified"] is True
    assert report["missing_acknowledged_records"] == 0, (
        f"{report['missing_acknowledged_records']} acknowledged records of {TOPIC} never delivered to {GROUP} "
        f"(its log is checked separately: {LOG_TOPIC} lost nothing); group state: {group_state(cluster)}; "
        f"load report errors: {report['errors']}")
    assert load.returncode == 0, out + err

    assert cluster.pod_uids()[victim] != victim_uid, "the broker pod was not replaced"
    cluster.wait_ready()  # the operator saw it all: Ready again, every broker back in
    with cluster.client(0) as client:
        status = client.cluster_status()
    assert status.live_brokers == 3
    assert status.healthy


def group_state(cluster: GoQueueCluster) -> str:
    with cluster.client(1) as client:
        group = client.describe_group(GROUP)
        inflight = client.inflight(GROUP)
    offsets = [(o.partition, o.committed, o.end_offset, o.inflight) for o in group.offsets]
    return (f"inflight {group.inflight}, (partition, committed, end, inflight) {offsets}, "
            f"leases {[(m.partition, m.offset, m.state, m.delivery_count) for m in inflight.messages][:20]}")
