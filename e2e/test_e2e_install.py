"""Install: the operator is running, and a 3-broker GoQueueCluster it created is Ready with the runbook's children,
its printer columns filled and its brokers in one healthy metadata quorum."""

from __future__ import annotations

import json

import pytest
from backends import OPERATOR_NAMESPACE
from workloads import BROKERS, GoQueueCluster

from goqueue.models import ClusterStatus

pytestmark = pytest.mark.e2e


def test_operator_and_a_three_broker_cluster_come_up(cluster: GoQueueCluster, operator_installed: str) -> None:
    # `helm install goqueue-operator charts/goqueue-operator`: the release is deployed, its pod Ready, and the
    # CRDs it carries are served.
    release = json.loads(cluster.backend.helm("status", operator_installed, "-o", "json",
                                              namespace=OPERATOR_NAMESPACE))
    assert release["info"]["status"] == "deployed"
    pods = json.loads(cluster.backend.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-l",
                                              "app.kubernetes.io/name=goqueue-operator", "-o", "json"))["items"]
    assert [p["metadata"]["name"] for p in pods if any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))], (
        f"no operator pod Ready in {OPERATOR_NAMESPACE}")
    crds = json.loads(cluster.backend.kubectl("get", "crd", "-o", "json"))["items"]
    assert {"goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io", "goqueueconsumergroups.goqueue.io"} <= {
        c["metadata"]["name"] for c in crds}

    status = cluster.status()
    version = (cluster.get() or {})["spec"]["version"]  # 0.1.0 unless the rolling upgrade ran first
    assert status["phase"] == "Running"
    assert status["readyReplicas"] == BROKERS
    assert status["version"] == version

    # `kubectl get goqueueclusters`: NAME REPLICAS READY VERSION PHASE AGE.
    table = cluster.kubectl("get", "goqueueclusters").splitlines()
    assert table[0].split()[:5] == ["NAME", "REPLICAS", "READY", "VERSION", "PHASE"]
    assert table[1].split()[:5] == [cluster.name, str(BROKERS), str(BROKERS), version, "Running"]

    # The runbook's names for the children.
    children = json.loads(cluster.kubectl("get", "statefulset,service,configmap,secret,pdb", "-o", "json"))["items"]
    names = {(c["kind"], c["metadata"]["name"]) for c in children}
    assert {("StatefulSet", "goqueue"), ("Service", "goqueue"), ("Service", "goqueue-headless"),
            ("Service", "goqueue-metrics"), ("ConfigMap", "goqueue-config"), ("Secret", "goqueue-raft"),
            ("PodDisruptionBudget", "goqueue")} <= names
    claims = json.loads(cluster.kubectl("get", "pvc", "-o", "json"))["items"]
    assert sorted(c["metadata"]["name"] for c in claims if c["status"]["phase"] == "Bound") == [
        f"goqueue-data-goqueue-{i}" for i in range(BROKERS)]

    # Every broker answers, and they agree on one quorum of three with ids = ordinals.
    for ordinal in range(BROKERS):
        with cluster.client(ordinal) as client:
            members: ClusterStatus = client.cluster_status()
        assert members.healthy, members
        assert members.live_brokers == BROKERS
        assert sorted(m.broker_id for m in members.members) == list(range(BROKERS))
