"""GoQueueUser against the real kube-apiserver and a 3-broker GoQueueCluster the operator runs (anonymous access off):
credentials in a Secret that work on the brokers, ACLs reconciled to exactly the spec, quotas, rotation on request,
the CRD's CEL refusals, a tls user refused with a Warning, and deletion removing the principal."""

from __future__ import annotations

import base64

import pytest
from conftest import RunningCluster
from operator_kube import API, apply, condition, get, try_apply, wait_condition, wait_events
from operator_process import OperatorProcess

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.errors import Forbidden, Unauthenticated
from goqueue.models import ProduceRecord, TopicCreate
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

READY_S = 60


def user_manifest(name: str, **spec: object) -> dict[str, object]:
    return {"apiVersion": API, "kind": "GoQueueUser", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": "goqueue"}, "authentication": {"type": "scram"}, **spec}}


def password(kubectl: Kubectl, ns: str, name: str) -> str:
    secret = get(kubectl, ns, "secret", name)
    assert secret is not None, f"Secret {name}"
    return base64.b64decode(secret["data"]["password"]).decode()


def as_user(cluster: RunningCluster, name: str, secret_password: str) -> GoQueueClient:
    return GoQueueClient(cluster.broker_urls[1], timeout_s=10, credentials=Credentials(name, secret_password))


def acl_keys(cluster: RunningCluster, principal: str) -> set[tuple[str, str, str, str]]:
    with cluster.client() as admin:
        return {(a.resource_type, a.name, a.pattern, a.operation) for a in admin.list_acls(principal=principal)}


def test_a_scram_user_lives_on_the_brokers_as_declared(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    with goqueue_cluster.client() as admin:
        admin.create_topic(TopicCreate(name="ledger", partitions=1, replication_factor=3))
    apply(kubectl, ns, user_manifest("billing", authorization={"acls": [
        {"resource": {"type": "topic", "name": "ledger"}, "operations": ["produce"]}]},
        quotas={"consumerByteRate": 1048576}))
    wait_condition(kubectl, ns, "goqueueuser", "billing", "Ready", READY_S)
    wait_events(kubectl, ns, "billing", "UserCreated", "QuotasUpdated", "AclsUpdated")
    secret = get(kubectl, ns, "secret", "billing")
    assert secret is not None
    assert base64.b64decode(secret["data"]["mechanism"]).decode() == "SCRAM-SHA-512"
    assert secret["metadata"]["ownerReferences"][0]["kind"] == "GoQueueUser"
    first = password(kubectl, ns, "billing")
    with as_user(goqueue_cluster, "billing", first) as billing:
        billing.produce("ledger", [ProduceRecord(value="entry-1")])
        with pytest.raises(Forbidden):
            billing.create_topic(TopicCreate(name="not-mine", partitions=1, replication_factor=1))
    with goqueue_cluster.client() as admin:
        (listed,) = [u for u in admin.list_users() if u.name == "billing"]
    assert (listed.producer_byte_rate, listed.consumer_byte_rate) == (None, 1048576)
    assert acl_keys(goqueue_cluster, "User:billing") == {("topic", "ledger", "literal", "produce")}

    # ACLs follow the spec exactly: produce taken away, consume on a prefix and the group given.
    apply(kubectl, ns, user_manifest("billing", authorization={"acls": [
        {"resource": {"type": "topic", "name": "led", "patternType": "prefix"}, "operations": ["consume"]},
        {"resource": {"type": "group", "name": "billing"}, "operations": ["consume"]}]}))
    wait_until(lambda: acl_keys(goqueue_cluster, "User:billing") == {
        ("topic", "led", "prefixed", "consume"), ("group", "billing", "literal", "consume")}, READY_S,
        message="the brokers hold exactly the new ACLs")
    with goqueue_cluster.client() as admin:
        wait_until(lambda: [u.consumer_byte_rate for u in admin.list_users() if u.name == "billing"] == [None],
                   READY_S, message="the quota removed with spec.quotas")

    # Rotation on request: a new password in the Secret, the old one refused, the annotation removed.
    kubectl("annotate", "goqueueuser", "billing", "-n", ns, "goqueue.io/rotate-credentials=true")
    wait_until(lambda: password(kubectl, ns, "billing") != first, READY_S, message="a new password")
    wait_until(lambda: "goqueue.io/rotate-credentials" not in (
        (get(kubectl, ns, "goqueueuser", "billing") or {})["metadata"].get("annotations") or {}), READY_S,
        message="the rotation annotation removed")
    wait_events(kubectl, ns, "billing", "CredentialsRotated")
    with as_user(goqueue_cluster, "billing", first) as stale, pytest.raises(Unauthenticated):
        stale.cluster_leader()
    with as_user(goqueue_cluster, "billing", password(kubectl, ns, "billing")) as fresh:
        assert fresh.cluster_leader().leader is not None

    # Deletion: the principal and its ACLs leave the brokers; the Secret goes with the resource.
    kubectl("delete", "goqueueuser", "billing", "-n", ns, "--wait=true", "--timeout=60s")
    with goqueue_cluster.client() as admin:
        assert "billing" not in {u.name for u in admin.list_users()}
    assert acl_keys(goqueue_cluster, "User:billing") == set()
    wait_until(lambda: get(kubectl, ns, "secret", "billing") is None, READY_S, message="the Secret collected")


def test_a_tls_user_is_refused_with_a_warning_and_gets_no_secret(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, {**user_manifest("certified"), "spec": {
        "clusterRef": {"name": "goqueue"}, "authentication": {"type": "tls"}}})
    refused = wait_condition(kubectl, ns, "goqueueuser", "certified", "Ready", READY_S, status="False")
    assert condition(refused, "Ready")["reason"] == "TlsAuthenticationUnavailable"
    wait_events(kubectl, ns, "certified", "TlsAuthenticationUnavailable")
    assert get(kubectl, ns, "secret", "certified") is None
    with goqueue_cluster.client() as admin:
        assert "certified" not in {u.name for u in admin.list_users()}


@pytest.mark.parametrize(("acl", "message"), [
    ({"resource": {"type": "cluster"}, "operations": ["produce"]}, "a cluster ACL takes the operations admin or all"),
    ({"resource": {"type": "topic", "name": "t"}, "operations": ["reset"]}, "a topic ACL takes produce"),
    ({"resource": {"type": "group", "name": "g"}, "operations": ["produce"]}, "a group ACL takes consume"),
    ({"resource": {"type": "topic"}, "operations": ["consume"]}, "a topic or group ACL names its resource"),
    ({"resource": {"type": "topic", "name": "*", "patternType": "prefix"}, "operations": ["consume"]},
     "a prefix pattern needs a prefix"),
])
def test_the_api_server_refuses_acls_the_brokers_would(
    kubectl: Kubectl, goqueue_cluster: RunningCluster, acl: dict[str, object], message: str,
) -> None:
    refused = try_apply(kubectl, goqueue_cluster.namespace, user_manifest("bad", authorization={"acls": [acl]}))
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr


def test_the_authentication_type_is_immutable(kubectl: Kubectl, goqueue_cluster: RunningCluster) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, user_manifest("fixed"))
    changed = try_apply(kubectl, ns, {**user_manifest("fixed"), "spec": {
        "clusterRef": {"name": "goqueue"}, "authentication": {"type": "tls"}}})
    assert "spec.authentication.type is immutable" in changed.stderr, changed.stderr
    kubectl("delete", "goqueueuser", "fixed", "-n", ns, "--wait=true", "--timeout=60s")
