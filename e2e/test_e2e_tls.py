"""A GoQueueCluster with spec.tls on, as a user runs one: the operator makes the cluster CA and the broker
certificate, the brokers come up Ready behind HTTPS probes and call each other over mutual TLS, and an application
pod that mounts `<cluster>-cluster-ca-cert` creates a topic, produces through the client Service and consumes
through its full name over https, verifying the brokers; plain http is refused there."""

from __future__ import annotations

import base64
import json

import pytest
from backends import Backend
from workloads import GoQueueCluster, run_client_pod

from goqueue_operator.brokers import BrokerTls, broker_client

pytestmark = pytest.mark.e2e

RECORDS = 30


def test_a_tls_cluster_serves_applications_that_trust_its_ca(backend: Backend, operator_installed: str,
                                                             namespace: str) -> None:
    cluster = GoQueueCluster(backend, namespace)
    cluster.apply(tls={"enabled": True})
    ready = cluster.wait_ready()
    assert next(c for c in ready["status"]["conditions"] if c["type"] == "TLSReady")["status"] == "True"
    assert ready["status"]["leader"] is not None  # asked by the operator over https

    topic, group = "tls-orders", "tls-readers"
    fqdn = f"goqueue.{namespace}.svc.cluster.local"
    script = (
        "set -eu; "
        f"goqueue-cli --server https://goqueue:8080 topic create --name {topic} --partitions 3 "
        "--replication-factor 3; "
        f"seq 1 {RECORDS} | sed 's/^/tls-/' | goqueue-cli --server https://goqueue:8080 produce --topic {topic}; "
        f"goqueue-cli --server https://{fqdn}:8080 -o json consume --topic {topic} --group {group} "
        f"--from-beginning --max {RECORDS} --ack --timeout 30; "
        "if goqueue-cli --server http://goqueue:8080 topic list; then echo PLAIN-HTTP-ANSWERED; fi"
    )
    log = run_client_pod(backend, namespace, "tls-client", script, ca_secret="goqueue-cluster-ca-cert")
    consumed = [r["value"] for r in (_json(line) for line in log.splitlines()) if isinstance(r, dict) and "value" in r]
    assert sorted(consumed) == sorted(f"tls-{i}" for i in range(1, RECORDS + 1)), log[-3000:]
    assert "PLAIN-HTTP-ANSWERED" not in log

    # This process, too, verifies a broker against the CA as its pod's name, whatever address reaches it.
    secret = json.loads(cluster.kubectl("get", "secret", "goqueue-cluster-ca-cert", "-o", "json"))
    ca = base64.b64decode(secret["data"]["ca.crt"])
    url = cluster.url(2).replace("http://", "https://", 1)
    tls = BrokerTls(ca, f"goqueue-2.goqueue-headless.{namespace}.svc.cluster.local")
    with broker_client(url, 10, tls, cluster.credentials()) as client:
        assert sum(p.high_watermark for p in client.describe_topic(topic).partition_details) == RECORDS


def _json(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None
