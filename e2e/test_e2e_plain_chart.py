"""The plain chart (no operator): `helm install goqueue charts/goqueue` in its own namespace brings up three brokers
in one quorum; an application pod writes and reads through the Service `goqueue`; `helm uninstall` removes the
brokers and keeps their claims (the data outlives the release, as the runbook says)."""

from __future__ import annotations

import json

import pytest
from backends import Backend
from workloads import BROKERS, run_client_pod

from goqueue.client.http import GoQueueClient
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

RECORDS = 40


def test_plain_chart_install_serves_clients_and_uninstall_keeps_claims(backend: Backend, namespace: str) -> None:
    notes = backend.install_plain_chart(namespace)
    assert "goqueue-cli" in notes  # NOTES print the first runbook commands
    sts = json.loads(backend.kubectl("get", "statefulset", "goqueue", "-n", namespace, "-o", "json"))
    assert sts["status"].get("readyReplicas") == BROKERS
    pods = json.loads(backend.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=goqueue",
                                      "-o", "json"))["items"]
    assert "app.kubernetes.io/managed-by=Helm" in backend.kubectl(
        "get", "statefulset", "goqueue", "-n", namespace, "--show-labels")
    assert sorted(p["metadata"]["name"] for p in pods) == [f"goqueue-{i}" for i in range(BROKERS)]
    with GoQueueClient(backend.broker_url(namespace, "goqueue-1"), timeout_s=10) as client:
        # Ready pods, then healthy: a broker's readiness can come before every peer's liveness reached the leader
        status = wait_until(lambda: (s := client.cluster_status()).healthy and s, 60, interval_s=1,
                            message="the cluster reports itself healthy")
    assert status.live_brokers == BROKERS

    script = (
        "set -eu; "
        "goqueue-cli --server http://goqueue:8080 topic create --name chart-orders --partitions 3 "
        "--replication-factor 3; "
        f"seq 1 {RECORDS} | sed 's/^/chart-/' | goqueue-cli --server http://goqueue:8080 produce --topic chart-orders; "
        "goqueue-cli --server http://goqueue:8080 -o json consume --topic chart-orders --group chart-readers "
        f"--from-beginning --max {RECORDS} --ack --timeout 30"
    )
    log = run_client_pod(backend, namespace, "chart-client", script)
    values = sorted(json.loads(line)["value"] for line in log.splitlines()
                    if line.startswith("{") and '"value"' in line)
    assert values == sorted(f"chart-{i}" for i in range(1, RECORDS + 1)), log[-3000:]

    backend.helm("uninstall", "goqueue", "--wait", "--timeout=120s", namespace=namespace)
    wait_until(lambda: not backend.kubectl("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=goqueue",
                                           "-o", "name").strip(), 120, message="the brokers gone after uninstall")
    kept = backend.kubectl("get", "pvc", "-n", namespace, "-o", "name").split()
    assert sorted(kept) == [f"persistentvolumeclaim/goqueue-data-goqueue-{i}" for i in range(BROKERS)]
