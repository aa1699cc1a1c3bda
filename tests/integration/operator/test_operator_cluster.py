"""A GoQueueCluster on the real control plane: the operator creates its children, the process-kubelet runs the
brokers, they form a cluster and become Ready; children drift back; status and Events tell what happened."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from kubernetes import client as k8s
from operator_kube import apply, cluster_manifest, get, is_true, operator_credentials, wait_condition, wait_events
from operator_process import OperatorProcess

from goqueue.client.http import GoQueueClient
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

BRING_UP_S = 180


def test_three_brokers_come_up_ready_with_every_child(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest())
    cluster = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", BRING_UP_S)
    status = cluster["status"]
    assert status["readyReplicas"] == 3
    assert status["replicas"] == 3
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == cluster["metadata"]["generation"]
    assert status["selector"] == ("app.kubernetes.io/component=broker,app.kubernetes.io/instance=goqueue,"
                                  "app.kubernetes.io/name=goqueue")
    assert status["version"] == "0.1.0"
    assert status["leader"] in (0, 1, 2)

    # The runbook's names.
    for kind, name in [("statefulset", "goqueue"), ("service", "goqueue"), ("service", "goqueue-headless"),
                       ("service", "goqueue-metrics"), ("configmap", "goqueue-config"),
                       ("poddisruptionbudget", "goqueue"), ("networkpolicy", "goqueue")]:
        assert get(kubectl, ns, kind, name) is not None, f"{kind}/{name} missing"
    pods = [get(kubectl, ns, "pod", f"goqueue-{i}") for i in range(3)]
    assert all(p is not None for p in pods)
    for i in range(3):
        assert get(kubectl, ns, "pvc", f"goqueue-data-goqueue-{i}") is not None
    pdb = get(kubectl, ns, "poddisruptionbudget", "goqueue")
    assert pdb is not None
    assert pdb["spec"]["maxUnavailable"] == 1
    assert json.loads(kubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/name=goqueue", "-o", "json")
                      )["items"].__len__() == 3

    # The brokers formed one cluster: every broker knows the same metadata leader.
    ips = [p["status"]["podIP"] for p in pods if p]
    leaders = set()
    for ip in ips:
        with GoQueueClient(f"http://{ip}:8080", timeout_s=5, credentials=operator_credentials(kubectl, ns)) as client:
            leaders.add(client.cluster_leader().leader)
            assert "goqueue_" in client.metrics_text()
    assert leaders == {status["leader"]}
    # Anonymous access is off: the operator called the brokers as its own principal to get here.
    assert httpx.get(f"http://{ips[0]}:8080/v1/admin/storage", timeout=5).status_code == 401

    wait_events(kubectl, ns, "goqueue", "Created", "ReadyTrue")
    assert "goqueue_operator_reconciles_total" in operator.metrics()


def test_children_drift_back_and_the_raft_password_is_never_replaced(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest(replicas=1))
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", BRING_UP_S)
    core = k8s.CoreV1Api(kube_api)
    password = core.read_namespaced_secret("goqueue-raft", ns).data["password"]
    assert len(base64.b64decode(password)) >= 32

    kubectl("delete", "configmap", "goqueue-config", "-n", ns)
    kubectl("patch", "service", "goqueue-metrics", "-n", ns, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/ports/0/targetPort", "value": 8081}]')
    wait_until(lambda: get(kubectl, ns, "configmap", "goqueue-config"), 30, message="goqueue-config re-created")

    def metrics_target() -> object:
        service = get(kubectl, ns, "service", "goqueue-metrics")
        return {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}.get(9000) if service else None

    wait_until(lambda: metrics_target() == "http", 30, message="goqueue-metrics port 9000 → http again")
    kubectl("annotate", "goqueuecluster", "goqueue", "-n", ns, "example.com/poke=1")  # another reconcile
    wait_until(lambda: is_true(get(kubectl, ns, "goqueuecluster", "goqueue"), "Ready"), 30)
    assert core.read_namespaced_secret("goqueue-raft", ns).data["password"] == password


def test_operator_serves_metrics_and_liveness(operator: OperatorProcess) -> None:
    assert httpx.get(f"{operator.metrics_url}/healthz", timeout=5).json() == {"status": "ok"}
    exposition = operator.metrics()
    for name in ("goqueue_operator_reconciles_total", "goqueue_operator_reconcile_duration_seconds",
                 "goqueue_operator_rollouts_blocked"):
        assert name in exposition
