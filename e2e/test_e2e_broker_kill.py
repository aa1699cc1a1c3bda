"""A broker pod killed under acks=all load, with the runbook's own tools: deploy/testing/load/goqueue_load.py writes
and reads through brokers 1 and 2 while deploy/testing/chaos/kill-random-broker.sh deletes goqueue-0 and waits for
it to come back. The StatefulSet re-creates the pod on the same claim, the operator reports the cluster Degraded and
then Ready again, and every acknowledged record is consumed (the load tool checks each (partition, offset) it was
acknowledged)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from backends import REPO
from operator_kube import topic_manifest
from workloads import GoQueueCluster, apply

from goqueue_harness.waiting import wait_until

LOAD = REPO / "deploy" / "testing" / "load" / "goqueue_load.py"
KILL = REPO / "deploy" / "testing" / "chaos" / "kill-random-broker.sh"
HEAL_TIMEOUT_S = 180
TOPIC = "kill-load"


@pytest.mark.timeout(HEAL_TIMEOUT_S + 300)
def test_a_broker_pod_killed_under_load_loses_no_acknowledged_record(cluster: GoQueueCluster) -> None:
    apply(cluster.backend.kubectl, cluster.namespace,
          topic_manifest(TOPIC, partitions=6, replicationFactor=3, config={"minInsyncReplicas": 2}))
    cluster.wait_resource("goqueuetopic", TOPIC)
    victim = "goqueue-0"
    victim_uid = cluster.pod_uids()[victim]
    load = subprocess.Popen(
        [sys.executable, str(LOAD), "--server", cluster.url(1), "--server", cluster.url(2), "--topic", TOPIC,
         "--no-create-topic", "--acks", "all", "--rate", "300", "--duration", "25", "--batch", "20",
         "--record-size", "100", "--producers", "2", "--consumers", "2", "--drain-timeout", "90", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        out, err = load.communicate(timeout=240)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert load.returncode == 0, out + err
    report = json.loads(out)
    assert report["produce"]["records"] > 1000
    assert report["produce"]["failed_requests"] == 0
    assert report["verified"] is True
    assert report["missing_acknowledged_records"] == 0

    assert cluster.pod_uids()[victim] != victim_uid, "the broker pod was not replaced"
    cluster.wait_ready()  # the operator saw it all: Ready again, every broker back in
    with cluster.client(0) as client:
        status = client.cluster_status()
    assert status.live_brokers == 3
    assert status.healthy
