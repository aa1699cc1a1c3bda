"""Storage expansion (including an operator crash mid-way and a StorageClass that refuses) and scaling rules
(refused while departing brokers hold replicas, drained when allowed, stopped at 0 and back with nothing lost)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client as k8s
from operator_kube import (
    apply,
    cluster_manifest,
    condition,
    get,
    operator_credentials,
    session_headers,
    topic_manifest,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess

from goqueue.models import ProduceRecord
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

READY_S = 240


def claim_request(kubectl: Kubectl, ns: str, ordinal: int) -> str | None:
    claim = get(kubectl, ns, "pvc", f"goqueue-data-goqueue-{ordinal}")
    return claim["spec"]["resources"]["requests"]["storage"] if claim else None


def template_size(kubectl: Kubectl, ns: str) -> str | None:
    sts = get(kubectl, ns, "statefulset", "goqueue")
    if sts is None or sts["metadata"].get("deletionTimestamp"):
        return None
    size: str = sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    return size


def test_storage_expansion_survives_an_operator_crash_and_restarts_no_broker(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest(replicas=1))
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", READY_S)
    pod_uid = get(kubectl, ns, "pod", "goqueue-0")["metadata"]["uid"]  # type: ignore[index]
    apply(kubectl, ns, cluster_manifest(replicas=1, storage={"size": "2Gi"}))

    def statefulset_being_replaced() -> bool:
        sts = get(kubectl, ns, "statefulset", "goqueue")
        return sts is None or bool(sts["metadata"].get("deletionTimestamp"))

    # Kill the operator in the middle: after the claims grew, while the StatefulSet is being re-created.
    wait_until(lambda: claim_request(kubectl, ns, 0) == "2Gi", 60, interval_s=0.1, message="claim patched")
    wait_until(statefulset_being_replaced, 60, interval_s=0.05, message="StatefulSet deleted for re-creation")
    operator.crash_and_restart()

    wait_until(lambda: template_size(kubectl, ns) == "2Gi", 120, message="StatefulSet re-created at 2Gi")
    done = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Resizing", 120, status="False")
    assert done["status"]["storage"] == {"size": "2Gi", "targetSize": "2Gi", "phase": "Idle"}
    claim = get(kubectl, ns, "pvc", "goqueue-data-goqueue-0")
    assert claim is not None
    assert claim["status"]["capacity"]["storage"] == "2Gi"
    assert get(kubectl, ns, "pod", "goqueue-0")["metadata"]["uid"] == pod_uid, (  # type: ignore[index]
        "the broker was restarted by a resize that needed no restart")
    assert condition(get(kubectl, ns, "goqueuecluster", "goqueue"), "Ready")["status"] == "True"
    wait_events(kubectl, ns, "goqueue", "ResizingClaims", "RecreatingStatefulSet", "Resized")


@pytest.fixture
def fixed_storage_class(kube_api: k8s.ApiClient) -> Iterator[str]:
    storage = k8s.StorageV1Api(kube_api)
    name = f"goqueue-fixed-{secrets.token_hex(3)}"
    storage.create_storage_class({"metadata": {"name": name}, "provisioner": "kubernetes.io/no-provisioner",
                                  "volumeBindingMode": "Immediate", "allowVolumeExpansion": False})
    yield name
    storage.delete_storage_class(name)


def test_a_storage_class_without_expansion_refuses_and_changes_nothing(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str, fixed_storage_class: str,
) -> None:
    ns = kube_namespace
    storage = {"size": "1Gi", "storageClassName": fixed_storage_class}
    apply(kubectl, ns, cluster_manifest(replicas=1, storage=storage))
    wait_until(lambda: claim_request(kubectl, ns, 0) == "1Gi", 60, message="the claim exists")
    apply(kubectl, ns, cluster_manifest(replicas=1, storage={**storage, "size": "3Gi"}))
    refused = wait_until(lambda: (c := get(kubectl, ns, "goqueuecluster", "goqueue")) is not None
                         and condition(c, "Resizing").get("reason") == "Refused" and c, 60,
                         message="Resizing=False reason Refused")
    assert condition(refused, "Resizing")["status"] == "False"
    assert "does not allow volume expansion" in refused["status"]["storage"]["message"]
    wait_events(kubectl, ns, "goqueue", "StorageClassNotExpandable")
    assert claim_request(kubectl, ns, 0) == "1Gi"
    assert template_size(kubectl, ns) == "1Gi"


def produce(url: str, topic: str, count: int, headers: dict[str, str]) -> None:
    """acks=all, one batch per partition; a retriable refusal (a metadata election just after start-up answers
    NOT_READY) is retried, as any client does."""
    with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
        for partition in range(3):
            body = {"acks": "all", "partition": partition,
                    "records": [ProduceRecord(value=f"p{partition}-{i}").model_dump() for i in range(count)]}

            def accepted(payload: dict[str, object] = body) -> bool:
                response = http.post(f"/v1/topics/{topic}/records", json=payload)
                if response.status_code != 200:
                    assert response.json()["error"]["retriable"], response.text
                return response.status_code == 200

            wait_until(accepted, 60, interval_s=0.5, message=f"{topic}/{partition} produce accepted")


def fetched(url: str, topic: str, headers: dict[str, str]) -> dict[int, list[str]]:
    """Every partition's values; a partition whose broker answers a retriable error reads as not there yet."""
    values: dict[int, list[str]] = {}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as http:
        for partition in range(3):
            response = http.get(f"/v1/topics/{topic}/partitions/{partition}/records",
                                params={"offset": 0, "maxRecords": 1000})
            if response.status_code != 200:
                assert response.json()["error"]["retriable"], response.text
                continue
            values[partition] = [r["value"] for r in response.json()["records"]]
    return values


def broker_url(kubectl: Kubectl, ns: str, ordinal: int = 0) -> str:
    pod = get(kubectl, ns, "pod", f"goqueue-{ordinal}")
    assert pod is not None
    return f"http://{pod['status']['podIP']}:8080"


def as_operator(kubectl: Kubectl, ns: str) -> dict[str, str]:
    """A session of the operator's principal (anonymous access is off); good on every broker, restarted or not."""
    return session_headers(broker_url(kubectl, ns), operator_credentials(kubectl, ns))


def test_scale_down_is_refused_while_departing_brokers_hold_replicas_then_drained(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    """Four brokers down to three (not three to two: the internal __consumer_state topic has replication factor 3,
    and the brokers refuse to drain below it; the operator then shows their reason and keeps the replicas)."""
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest(replicas=4))
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", READY_S)
    apply(kubectl, ns, topic_manifest("spread", partitions=3, replicationFactor=2))
    wait_condition(kubectl, ns, "goqueuetopic", "spread", "Ready", 60)
    session = as_operator(kubectl, ns)
    produce(broker_url(kubectl, ns), "spread", 5, session)

    kubectl("scale", "goqueuecluster/goqueue", "-n", ns, "--replicas=3")
    blocked = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "ScaleDownBlocked", 60)
    assert condition(blocked, "ScaleDownBlocked")["reason"] == "DepartingBrokersHoldReplicas"
    assert "broker 3 holds" in condition(blocked, "ScaleDownBlocked")["message"]
    assert get(kubectl, ns, "statefulset", "goqueue")["spec"]["replicas"] == 4  # type: ignore[index]
    wait_events(kubectl, ns, "goqueue", "DepartingBrokersHoldReplicas")

    kubectl("patch", "goqueuecluster", "goqueue", "-n", ns, "--type=merge",
            "-p", json.dumps({"spec": {"scaling": {"autoDrain": True}}}))
    wait_until(lambda: get(kubectl, ns, "pod", "goqueue-3") is None, 120, message="goqueue-3 drained and removed")
    assert get(kubectl, ns, "statefulset", "goqueue")["spec"]["replicas"] == 3  # type: ignore[index]
    assert get(kubectl, ns, "pvc", "goqueue-data-goqueue-3") is not None, "a departed broker's claim is kept"
    wait_events(kubectl, ns, "goqueue", "DrainingBrokers")
    expected = {p: [f"p{p}-{i}" for i in range(5)] for p in range(3)}
    wait_until(lambda: fetched(broker_url(kubectl, ns), "spread", session) == expected, 60,
               message="every message kept")


def test_scale_to_zero_keeps_the_data_and_scaling_back_brings_it_back(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str,
) -> None:
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest())
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", READY_S)
    apply(kubectl, ns, topic_manifest("kept", partitions=3, replicationFactor=3))
    wait_condition(kubectl, ns, "goqueuetopic", "kept", "Ready", 60)
    session = as_operator(kubectl, ns)
    produce(broker_url(kubectl, ns), "kept", 10, session)
    revision = get(kubectl, ns, "statefulset", "goqueue")["status"]["updateRevision"]  # type: ignore[index]

    kubectl("scale", "goqueuecluster/goqueue", "-n", ns, "--replicas=0")
    stopped = wait_until(lambda: (c := get(kubectl, ns, "goqueuecluster", "goqueue")) is not None
                         and c["status"].get("phase") == "Stopped" and c, 120, message="phase Stopped")
    assert condition(stopped, "Ready")["reason"] == "Stopped"
    for i in range(3):
        assert get(kubectl, ns, "pvc", f"goqueue-data-goqueue-{i}") is not None

    kubectl("scale", "goqueuecluster/goqueue", "-n", ns, "--replicas=3")
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", READY_S)
    assert get(kubectl, ns, "statefulset", "goqueue")["status"]["updateRevision"] == revision  # type: ignore[index]
    expected = {p: [f"p{p}-{i}" for i in range(10)] for p in range(3)}
    wait_until(lambda: fetched(broker_url(kubectl, ns, 1), "kept", session) == expected, 60,
               message="every message back after the stop")
