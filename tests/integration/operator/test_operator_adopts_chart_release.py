"""Moving a plain-chart release under the operator (docs/OPERATOR.md, "From the plain chart to the operator").

A user runs `helm install goqueue charts/goqueue` today and wants the operator's procedures tomorrow without a new
cluster: make helm forget the release (its release records; `helm uninstall` would delete every broker at once),
then apply a GoQueueCluster of the same name. The operator must take over the StatefulSet (recreated: nothing of the
chart's pod template may linger), its claims, Services, ConfigMap and the Raft password, and bring the brokers to
its own pod template one at a time (its roll: each restart after the previous broker caught up) — under acks=all
produce, losing no acknowledged record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
from cluster_process import History, consume_all
from kubernetes import client as k8s
from operator_kube import (
    apply,
    cluster_manifest,
    get,
    is_true,
    operator_credentials,
    session_headers,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess
from pod_producer import PodProducer

from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import Kubectl, KubeletHandle
from goqueue_harness.waiting import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "charts"))
from chart_release import RELEASE, install_release

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_a_plain_chart_release_is_adopted_without_loss_one_broker_at_a_time(
    operator: OperatorProcess, kubectl: Kubectl, k8s_binaries: BinDir, kubeconfig: Path, kube_api: k8s.ApiClient,
    kubelet: KubeletHandle,
) -> None:
    with install_release("adopt", k8s_binaries, kubeconfig, kube_api, kubelet) as release:
        ns = release.namespace
        log_offset = operator.log_size()
        password = release.raft_password()
        with httpx.Client(base_url=release.url(0), timeout=10) as http:
            created = http.post("/v1/topics", json={"name": "ledger", "partitions": 3, "replicationFactor": 3,
                                                    "config": {"minInsyncReplicas": 2}})
            assert created.status_code == 201, created.text
        history = History()
        producer = PodProducer(k8s.CoreV1Api(kube_api), ns, "ledger", history, cluster=RELEASE)
        producer.start()
        try:
            wait_until(lambda: history.count() >= 100, 60, message="100 acknowledged writes before the move")
            before = {p.metadata.name: p.metadata.uid for p in release.pods()}
            # The documented procedure, as a user types it: helm forgets the release (its release records are
            # deleted; `helm uninstall` would delete every broker at once), then the GoQueueCluster is applied.
            kubectl("delete", "secret", "-n", ns, "-l", f"owner=helm,name={RELEASE}")
            assert RELEASE not in release.helm_run("list", "-q").split(), "helm still lists the release"
            assert {p.metadata.name: p.metadata.uid for p in release.pods()} == before, "forgetting restarted brokers"
            acked_at_uninstall = history.count()
            apply(kubectl, ns, cluster_manifest(RELEASE, storage={"size": "100Gi"}))

            def adopted() -> bool:
                cluster = get(kubectl, ns, "goqueuecluster", RELEASE)
                pods = {p.metadata.name: p.metadata.uid for p in release.pods()}
                return (is_true(cluster, "Ready") and len(pods) == 3
                        and all(pods.get(name) not in (None, uid) for name, uid in before.items()))

            wait_until(adopted, 600, interval_s=1, message="every broker restarted by the operator, cluster Ready")
            wait_until(lambda: history.count() >= acked_at_uninstall + 100, 60, message="writes go on after it")
        finally:
            producer.stop()
        wait_condition(kubectl, ns, "goqueuecluster", RELEASE, "Ready", 60)
        statefulset = get(kubectl, ns, "statefulset", RELEASE)
        assert statefulset is not None
        owners = [o["kind"] for o in statefulset["metadata"].get("ownerReferences", [])]
        assert owners == ["GoQueueCluster"], owners
        fields = json.loads(kubectl("get", "statefulset", RELEASE, "-n", ns, "-o", "json", "--show-managed-fields"))
        managers = {m["manager"] for m in fields["metadata"]["managedFields"]}
        assert "goqueue-operator" in managers, managers
        assert "helm" not in managers, f"fields of the chart's StatefulSet linger, owned by helm: {managers}"
        assert release.raft_password() == password, "the Raft password changed: restarted brokers could not join"
        claims = {c.metadata.name for c in release.core.list_namespaced_persistent_volume_claim(ns).items}
        assert claims == {f"goqueue-data-{RELEASE}-{i}" for i in range(3)}, claims
        # One broker at a time, each after the previous one caught up (the operator's roll, not a mass restart).
        wait_events(kubectl, ns, RELEASE, "AdoptingStatefulSet", "BrokerRestarting", "BrokerCaughtUp")

        def steps() -> list[str]:
            return [e["reason"] for e in operator.log_events(log_offset) if e.get("message") == "event"
                    and e.get("object") == f"{ns}/{RELEASE}" and e.get("reason") in ("BrokerRestarting",
                                                                                  "BrokerCaughtUp")]

        # The last caught-up check may come a moment after the cluster shows Ready.
        wait_until(lambda: steps().count("BrokerCaughtUp") >= 3, 60, message="the third broker caught up")
        assert steps() == ["BrokerRestarting", "BrokerCaughtUp"] * 3, steps()
        # Adopted, the brokers refuse anonymous clients (the operator's default): read as the operator.
        session = session_headers(release.url(0), operator_credentials(kubectl, ns, RELEASE))
        with httpx.Client(base_url=release.url(0), timeout=10, headers=session) as http:
            history.check(consume_all(http, "ledger", 3))
