"""GoQueueTopic against running brokers: create, grow, change settings, drift repair, deletion policies,
conflicts, and a namespace whose deletion must not wedge on topic finalizers."""

from __future__ import annotations

import json

import pytest
from conftest import RunningCluster, delete_namespace
from kubernetes import client as k8s
from operator_kube import (
    apply,
    cluster_manifest,
    condition,
    event_reasons,
    events,
    get,
    topic_manifest,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess

from goqueue.errors import TopicNotFound
from goqueue.models import ProduceRecord, TopicInfo, TopicUpdate
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

READY_S = 60


def describe(cluster: RunningCluster, name: str, broker: int = 0) -> TopicInfo | None:
    with cluster.client(broker) as client:
        try:
            return client.describe_topic(name)
        except TopicNotFound:
            return None


def gone(kubectl: Kubectl, cluster: RunningCluster, kind: str, name: str) -> bool:
    return get(kubectl, cluster.namespace, kind, name) is None


def test_topic_lifecycle_create_grow_configure_delete(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("orders", partitions=3, replicationFactor=3, deletionPolicy="Delete",
                                      config={"retentionMaxAge": "1h"}))
    ready = wait_condition(kubectl, ns, "goqueuetopic", "orders", "Ready", READY_S)
    assert ready["status"]["partitions"] == 3
    assert ready["status"]["replicationFactor"] == 3
    # in the spec's units: the spec's text, and the brokers' defaults as a person writes them
    assert ready["status"]["config"]["retentionMaxAge"] == "1h"
    assert ready["status"]["config"]["retentionMaxSize"] == "10GB"
    assert ready["status"]["config"]["minInsyncReplicas"] == 2
    for broker in range(3):  # one cluster: every broker knows the topic
        live = describe(goqueue_cluster, "orders", broker)
        assert live is not None
        assert (live.partitions, live.replication_factor) == (3, 3)

    apply(kubectl, ns, topic_manifest("orders", partitions=6, replicationFactor=3, deletionPolicy="Delete",
                                      config={"retentionMaxAge": "2h", "cleanupPolicy": "compact"}))
    wait_until(lambda: (t := describe(goqueue_cluster, "orders")) is not None and t.partitions == 6
               and t.config.retention_max_age_s == 7200 and t.config.cleanup_policy.value == "compact",
               READY_S, message="orders grown to 6 partitions, 2h retention, compacted")
    wait_until(lambda: (get(kubectl, ns, "goqueuetopic", "orders") or {}).get("status", {}).get("partitions") == 6,
               READY_S, message="status.partitions 6")
    wait_until(lambda: {"TopicCreated", "TopicUpdated"} <= set(event_reasons(kubectl, ns, "orders")), 30,
               message="TopicCreated and TopicUpdated Events")
    printed = kubectl("get", "gqt", "orders", "-n", ns)
    assert printed.split("\n")[1].split()[:5] == ["orders", "goqueue", "6", "3", "True"]

    kubectl("delete", "goqueuetopic", "orders", "-n", ns, "--wait=false")
    wait_until(lambda: gone(kubectl, goqueue_cluster, "goqueuetopic", "orders"), READY_S, message="CR gone")
    assert describe(goqueue_cluster, "orders") is None, "deletionPolicy Delete left the topic behind"


def test_drift_behind_the_operators_back_is_repaired(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("payments", partitions=2, replicationFactor=3,
                                      config={"retentionMaxAge": "1h"}))
    wait_condition(kubectl, ns, "goqueuetopic", "payments", "Ready", READY_S)
    with goqueue_cluster.client(1) as client:
        client.update_topic("payments", TopicUpdate(config={"retentionMaxAge": 60}))
    wait_until(lambda: (t := describe(goqueue_cluster, "payments")) is not None and t.config.retention_max_age_s
               == 3600, 30, message="retention repaired to 1h")
    wait_until(lambda: "DriftRepaired" in event_reasons(kubectl, ns, "payments"), 30, message="DriftRepaired Event")
    status = get(kubectl, ns, "goqueuetopic", "payments")
    assert status is not None
    assert status["status"]["config"]["retentionMaxAge"] == "1h"

    with goqueue_cluster.client(2) as client:
        client.delete_topic("payments")
    wait_until(lambda: describe(goqueue_cluster, "payments") is not None, 30, message="deleted topic re-created")


def test_retain_keeps_the_topic_and_delete_if_empty_keeps_a_topic_with_messages(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("audit", replicationFactor=3))
    apply(kubectl, ns, topic_manifest("ledger", replicationFactor=3, deletionPolicy="Delete", deleteIfEmpty=True))
    for name in ("audit", "ledger"):
        wait_condition(kubectl, ns, "goqueuetopic", name, "Ready", READY_S)
    with goqueue_cluster.client() as client:
        client.produce("ledger", [ProduceRecord(value="entry-1")])
    for name in ("audit", "ledger"):
        kubectl("delete", "goqueuetopic", name, "-n", ns, "--wait=false")
        wait_until(lambda n=name: gone(kubectl, goqueue_cluster, "goqueuetopic", n), READY_S,  # type: ignore[misc]
                   message=f"{name} CR gone")
    audit, ledger = describe(goqueue_cluster, "audit"), describe(goqueue_cluster, "ledger")
    assert audit is not None, "deletionPolicy Retain deleted the topic"
    assert ledger is not None, "deleteIfEmpty deleted a topic holding messages"
    assert ledger.messages == 1


def test_two_resources_naming_one_topic_the_newer_is_in_conflict(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("shared-a", topicName="Shared_Topic", replicationFactor=3))
    wait_condition(kubectl, ns, "goqueuetopic", "shared-a", "Ready", READY_S)
    apply(kubectl, ns, topic_manifest("shared-b", topicName="Shared_Topic", replicationFactor=3,
                                      deletionPolicy="Delete"))
    newer = wait_condition(kubectl, ns, "goqueuetopic", "shared-b", "Conflict", READY_S)
    assert "shared-a" in condition(newer, "Conflict")["message"]
    assert condition(newer, "Ready")["status"] == "False"
    assert condition(get(kubectl, ns, "goqueuetopic", "shared-a"), "Ready")["status"] == "True"
    kubectl("delete", "goqueuetopic", "shared-b", "-n", ns, "--wait=false")
    wait_until(lambda: gone(kubectl, goqueue_cluster, "goqueuetopic", "shared-b"), READY_S)
    assert describe(goqueue_cluster, "Shared_Topic") is not None, "the newer resource deleted the older one's topic"


def assert_warning(kubectl: Kubectl, ns: str, name: str, reason: str, fix: str) -> None:
    """One Warning Event with the condition's reason, naming the resource and saying how to fix it — what
    `kubectl get events` shows a user first."""
    wait_events(kubectl, ns, name, reason)
    (event,) = [e for e in events(kubectl, ns, name) if e["reason"] == reason]
    assert event["type"] == "Warning", event
    assert event["message"].startswith(f"GoQueueTopic {ns}/{name}: "), event["message"]
    assert fix in event["message"], event["message"]


def test_a_topic_the_brokers_refuse_says_so_in_a_warning_event(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("too-wide", replicationFactor=5))
    refused = wait_condition(kubectl, ns, "goqueuetopic", "too-wide", "Ready", READY_S, status="False")
    assert condition(refused, "Ready")["reason"] == "RejectedByBroker"
    assert_warning(kubectl, ns, "too-wide", "RejectedByBroker", "Fix: correct the spec (kubectl edit goqueuetopic/")


def test_a_topic_of_a_missing_cluster_waits_and_deletes_without_wedging(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("orphan", cluster="nowhere", deletionPolicy="Delete"))
    waiting = wait_condition(kubectl, ns, "goqueuetopic", "orphan", "Ready", READY_S, status="False")
    assert condition(waiting, "Ready")["reason"] == "ClusterNotFound"
    assert_warning(kubectl, ns, "orphan", "ClusterNotFound", "Fix: create GoQueueCluster nowhere in namespace")
    kubectl("delete", "goqueuetopic", "orphan", "-n", ns, "--wait=false")
    wait_until(lambda: gone(kubectl, goqueue_cluster, "goqueuetopic", "orphan"), 30,
               message="the finalizer is released when the cluster does not exist")


def test_release_finalizer_annotation_is_the_escape_hatch(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, topic_manifest("keepme", replicationFactor=3, deletionPolicy="Delete"))
    wait_condition(kubectl, ns, "goqueuetopic", "keepme", "Ready", READY_S)
    kubectl("annotate", "goqueuetopic", "keepme", "-n", ns, "goqueue.io/release-finalizer=true")
    kubectl("delete", "goqueuetopic", "keepme", "-n", ns, "--wait=false")
    wait_until(lambda: gone(kubectl, goqueue_cluster, "goqueuetopic", "keepme"), READY_S)
    assert describe(goqueue_cluster, "keepme") is not None


def test_namespace_deletion_with_topics_present_completes(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient,
) -> None:
    """The cluster, its brokers and topics with deletionPolicy Delete go together; no finalizer wedges it."""
    core = k8s.CoreV1Api(kube_api)
    ns = "t-ns-deletion-with-topics"
    core.create_namespace({"metadata": {"name": ns, "labels": {"goqueue.dev/test": "true"}}})
    wait_until(lambda: "default" in [a.metadata.name for a in core.list_namespaced_service_account(ns).items], 30)
    apply(kubectl, ns, cluster_manifest(replicas=1))
    for index in range(3):
        apply(kubectl, ns, topic_manifest(f"t{index}", replicationFactor=1, deletionPolicy="Delete"))
    for index in range(3):
        wait_condition(kubectl, ns, "goqueuetopic", f"t{index}", "Ready", 240)
    topics = json.loads(kubectl("get", "gqt", "-n", ns, "-o", "json"))["items"]
    assert all("goqueue.io/finalizer" in t["metadata"].get("finalizers", []) for t in topics)
    delete_namespace(core, ns)  # asserts it finishes within the harness's namespace deadline
