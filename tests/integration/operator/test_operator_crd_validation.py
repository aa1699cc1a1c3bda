"""The real kube-apiserver enforces the CRDs' OpenAPI and CEL rules: invalid objects are refused with our message.

No operator runs here: validation is the API server's job, so a rule that is wrong fails these tests even when
every operator test passes.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from goqueue_harness.pytest_plugin import Kubectl

pytestmark = pytest.mark.integration

JSON = dict[str, Any]


def topic(name: str = "orders", **spec: Any) -> JSON:
    return {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": "goqueue"}, **spec}}


def cluster(name: str = "goqueue", **spec: Any) -> JSON:
    """Paused: an operator running in the same session must not start brokers for validation-only objects."""
    return {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueCluster",
            "metadata": {"name": name, "annotations": {"goqueue.io/paused": "true"}}, "spec": {"replicas": 3, **spec}}


def group(name: str = "workers", **spec: Any) -> JSON:
    return {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueConsumerGroup", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": "goqueue"}, "topics": ["orders"], **spec}}


def rebalance(name: str = "spread", **spec: Any) -> JSON:
    return {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueRebalance", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": "goqueue"}, "goals": {"balance": True}, **spec}}


def apply(kubectl: Kubectl, ns: str, obj: JSON) -> tuple[bool, str]:
    """`kubectl apply`; (accepted, stderr)."""
    proc = subprocess.run(
        [str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "apply", "-n", ns, "-f", "-"],
        input=json.dumps(obj), capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode == 0, proc.stderr


def refused(kubectl: Kubectl, ns: str, obj: JSON) -> str:
    accepted, stderr = apply(kubectl, ns, obj)
    assert not accepted, f"the API server accepted an invalid object: {json.dumps(obj)}"
    return " ".join(stderr.split())


def accept(kubectl: Kubectl, ns: str, obj: JSON) -> None:
    accepted, stderr = apply(kubectl, ns, obj)
    assert accepted, stderr


@pytest.fixture
def k(kubectl: Kubectl, goqueue_crds: list[str]) -> Kubectl:
    return kubectl


def renamed(obj: JSON, suffix: str) -> JSON:
    """The same object under a name of its own, so cases can share the module's namespace."""
    return {**obj, "metadata": {**obj["metadata"], "name": f"{obj['metadata']['name']}-{suffix}"}}


CREATE_CASES = [
    (topic(replicationFactor=0), "spec.replicationFactor must be at least 1"),
    (topic(topicName="__consumer_state"), "spec.topicName cannot start with '__'"),
    (topic(replicationFactor=1, config={"minInsyncReplicas": 2}),
     "spec.config.minInsyncReplicas cannot exceed spec.replicationFactor"),
    (topic(partitions=0), "spec.partitions: Invalid value: 0"),
    (cluster(storage={"size": "ten gigabytes"}), "spec.storage.size must be a positive Kubernetes quantity"),
    (cluster(storage={"size": "0"}), "spec.storage.size must be a positive Kubernetes quantity"),
    (cluster(config={"cluster.password": "x"}), "the operator manages them"),
    (cluster(config={"retention": "7d"}), "spec.config keys are dotted broker settings"),
    (cluster(replicas=-1), "spec.replicas: Invalid value: -1"),
    (cluster(replicas=2), "spec.replicas 2 tolerates no broker failure"),  # the chart's validation.yaml says the same
    (group(offsetResets=[{"id": "r1", "topic": "orders", "to": "offset"}]),
     "an offset reset with to: offset needs offset"),
    (group(offsetResets=[{"id": "r1", "topic": "orders", "to": "timestamp"}]),
     "an offset reset with to: timestamp needs timestamp"),
    (group(offsetResets=[{"id": "r1", "topic": "orders", "to": "earliest"},
                         {"id": "r1", "topic": "orders", "to": "latest"}]), "Duplicate value"),
    (rebalance(goals={}), "spec.goals needs at least one goal"),
    (rebalance(goals={"drainBrokers": [2], "addBrokers": [2]}),
     "a broker cannot be in both spec.goals.drainBrokers and spec.goals.addBrokers"),
    (rebalance(goals={"replicationFactors": {"orders": 0}}), "spec.goals.replicationFactors.orders: Invalid value"),
    (rebalance(throttleBytesPerSecond=10), "spec.throttleBytesPerSecond: Invalid value"),
]


@pytest.mark.parametrize(("obj", "message"), CREATE_CASES, ids=[m for _, m in CREATE_CASES])
def test_invalid_objects_are_refused_with_the_rules_message(
    k: Kubectl, module_namespace: str, obj: JSON, message: str,
) -> None:
    assert message in refused(k, module_namespace, obj)


UPDATE_CASES = [
    (topic(partitions=4), topic(partitions=2),
     "spec.partitions can never decrease (GoQueue cannot remove partitions)"),
    (topic(), topic(topicName="payments"), "spec.topicName is immutable"),
    (topic(topicName="Orders"), topic(topicName="Orders2"), "spec.topicName is immutable"),
    (topic(), {**topic(), "spec": {"clusterRef": {"name": "other"}}}, "spec.clusterRef is immutable"),
    (cluster(storage={"size": "10Gi"}), cluster(storage={"size": "9Gi"}), "spec.storage.size can never shrink"),
    (cluster(storage={"size": "1Gi"}), cluster(storage={"size": "1000Mi"}), "spec.storage.size can never shrink"),
    (cluster(storage={"size": "1Gi", "storageClassName": "standard"}),
     cluster(storage={"size": "1Gi", "storageClassName": "fast"}), "spec.storage.storageClassName is immutable"),
    (group(), {**group(), "spec": {**group()["spec"], "clusterRef": {"name": "other"}}},
     "spec.clusterRef is immutable"),
    (group(mode="shared"), group(mode="ordered"), "spec.mode is immutable"),
    (rebalance(), {**rebalance(), "spec": {**rebalance()["spec"], "clusterRef": {"name": "other"}}},
     "spec.clusterRef is immutable"),
    (group(offsetResets=[{"id": "r1", "topic": "orders", "to": "earliest"}]),
     group(offsetResets=[{"id": "r1", "topic": "orders", "to": "latest"}]),
     "an offset reset cannot be changed once added"),
]


@pytest.mark.parametrize(("index", "before", "after", "message"),
                         [(i, *case) for i, case in enumerate(UPDATE_CASES)], ids=[m for *_, m in UPDATE_CASES])
def test_forbidden_changes_are_refused_with_the_rules_message(
    k: Kubectl, module_namespace: str, index: int, before: JSON, after: JSON, message: str,
) -> None:
    accept(k, module_namespace, renamed(before, f"u{index}"))
    assert message in refused(k, module_namespace, renamed(after, f"u{index}"))


def test_allowed_changes_are_accepted(k: Kubectl, module_namespace: str) -> None:
    """The rules refuse only what they name: growth, a same-size quantity in other units, new reset ids, a
    replication factor up or down (a reassignment), new rebalance goals pass."""
    ns = module_namespace
    accept(k, ns, topic(partitions=2))
    accept(k, ns, topic(partitions=8))
    accept(k, ns, topic("rf", replicationFactor=1))
    accept(k, ns, topic("rf", replicationFactor=3))
    accept(k, ns, topic("rf", replicationFactor=2))
    accept(k, ns, rebalance(goals={"replicationFactors": {"Orders_1": 2}}, throttleBytesPerSecond=1048576))
    accept(k, ns, rebalance(goals={"drainBrokers": [2], "addBrokers": [3]}, approved=True))
    accept(k, ns, cluster(storage={"size": "1Gi"}))
    accept(k, ns, cluster(storage={"size": "1024Mi"}))
    accept(k, ns, cluster(storage={"size": "2Gi"}))
    accept(k, ns, group(offsetResets=[{"id": "r1", "topic": "orders", "to": "earliest"}]))
    accept(k, ns, group(offsetResets=[{"id": "r1", "topic": "orders", "to": "earliest"},
                                      {"id": "r2", "topic": "orders", "to": "offset", "offset": 5}]))


def test_defaults_are_filled_in_by_the_api_server(k: Kubectl, module_namespace: str) -> None:
    accept(k, module_namespace, {**cluster("defaults"), "spec": {}})
    spec = json.loads(k("get", "gqc", "defaults", "-n", module_namespace, "-o", "json"))["spec"]
    assert spec["replicas"] == 3
    assert spec["storage"] == {"size": "10Gi"}
    assert spec["pod"]["terminationGracePeriodSeconds"] == 60
    assert spec["disruptionBudget"] == {"maxUnavailable": 1}
    accept(k, module_namespace, topic("defaults"))
    topic_spec = json.loads(k("get", "gqt", "defaults", "-n", module_namespace, "-o", "json"))["spec"]
    assert topic_spec["partitions"] == 1
    assert topic_spec["replicationFactor"] == 3
    assert topic_spec["deletionPolicy"] == "Retain"


def test_kubectl_get_goqueue_lists_all_three_kinds_with_their_columns(k: Kubectl, kube_namespace: str) -> None:
    ns = kube_namespace
    for obj in (cluster(), topic(), group()):
        accept(k, ns, obj)
    out = k("get", "goqueue", "-n", ns)
    assert "goqueuecluster.goqueue.io/goqueue" in out
    assert "goqueuetopic.goqueue.io/orders" in out
    assert "goqueueconsumergroup.goqueue.io/workers" in out
    headers = [line.split() for line in out.splitlines() if line.startswith("NAME")]
    assert ["NAME", "REPLICAS", "READY", "VERSION", "PHASE", "AGE"] in headers
    assert ["NAME", "CLUSTER", "PARTITIONS", "REPLICAS", "READY", "AGE"] in headers
    assert ["NAME", "CLUSTER", "TOPICS", "LAG", "PAUSED", "READY", "AGE"] in headers
    assert k("get", "gqt", "-n", ns, "-o", "name").strip() == "goqueuetopic.goqueue.io/orders"
    assert k("get", "gqcg", "-n", ns, "-o", "name").strip() == "goqueueconsumergroup.goqueue.io/workers"


def test_scale_subresource_sets_spec_replicas(k: Kubectl, module_namespace: str) -> None:
    """The runbook's emergency stop, made declarative: `kubectl scale goqueuecluster/NAME --replicas=0`; the scale
    subresource obeys the same rules as the spec (2 brokers are refused there too)."""
    accept(k, module_namespace, cluster("scaled"))
    k("scale", "goqueuecluster/scaled", "-n", module_namespace, "--replicas=0")
    spec = json.loads(k("get", "gqc", "scaled", "-n", module_namespace, "-o", "json"))["spec"]
    assert spec["replicas"] == 0
    scale = subprocess.run([str(k.binary), f"--kubeconfig={k.kubeconfig}", "scale", "goqueuecluster/scaled", "-n",
                            module_namespace, "--replicas=2"], capture_output=True, text=True, timeout=60, check=False)
    assert scale.returncode != 0
    assert "tolerates no broker failure" in scale.stderr, scale.stderr


def test_wide_output_shows_why_a_resource_is_not_ready(k: Kubectl, kube_namespace: str) -> None:
    """`kubectl get -o wide` adds the Ready condition's reason and message (what `kubectl describe` would show)."""
    ns = kube_namespace
    accept(k, ns, topic("orphan"))
    ready = {"type": "Ready", "status": "False", "reason": "ClusterNotFound",
             "message": "GoQueueCluster goqueue does not exist", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    k("patch", "gqt", "orphan", "-n", ns, "--subresource=status", "--type=merge", "-p",
      json.dumps({"status": {"conditions": [ready]}}))
    lines = k("get", "gqt", "orphan", "-n", ns, "-o", "wide").splitlines()
    assert lines[0].split()[-2:] == ["REASON", "MESSAGE"], lines[0]
    assert "ClusterNotFound" in lines[1], lines[1]
    assert "GoQueueCluster goqueue does not exist" in lines[1], lines[1]
    assert "REASON" not in k("get", "gqt", "orphan", "-n", ns), "the reason is a wide-only column"
    accept(k, ns, cluster())
    accept(k, ns, group())
    for kind in ("gqc", "gqcg"):
        assert k("get", kind, "-n", ns, "-o", "wide").splitlines()[0].split()[-2:] == ["REASON", "MESSAGE"], kind
