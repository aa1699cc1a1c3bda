"""GoQueueUser against the real kube-apiserver and a 3-broker GoQueueCluster the operator runs (anonymous access off):
credentials in a Secret that work on the brokers, ACLs reconciled to exactly the spec, quotas, rotation on request,
the CRD's CEL refusals, a tls user refused with a Warning, and deletion removing the principal."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import httpx
import pytest
from conftest import RunningCluster
from operator_kube import (
    API,
    apply,
    cluster_manifest,
    condition,
    get,
    operator_credentials,
    try_apply,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.errors import Forbidden, Unauthenticated
from goqueue.models import ProduceRecord, TopicCreate
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until
from goqueue_operator.brokers import BrokerTls, broker_client, broker_url

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


class AsUserCertificate(httpx.BaseTransport):
    """https to a broker by pod IP, verified as its pod DNS name (what its certificate names), presenting a user's
    client certificate (the operator's own `VerifiedAs` presents none)."""

    def __init__(self, files: Path, server_name: str) -> None:
        context = ssl.create_default_context(cafile=str(files / "ca.crt"))
        context.load_cert_chain(files / "tls.crt", files / "tls.key")
        self._inner = httpx.HTTPTransport(verify=context)
        self._server_name = server_name

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "sni_hostname": self._server_name}
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def test_a_tls_user_gets_a_client_certificate_the_brokers_take_as_its_principal(
    operator: OperatorProcess, kubectl: Kubectl, kube_namespace: str, tmp_path: Path,
) -> None:
    ns = kube_namespace
    apply(kubectl, ns, cluster_manifest(replicas=1, tls={"enabled": True}))
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 240)
    pod = get(kubectl, ns, "pod", "goqueue-0") or {}
    url = broker_url(pod["status"]["podIP"], 8080, tls=True)
    server_name = f"goqueue-0.goqueue-headless.{ns}.svc.cluster.local"
    ca = base64.b64decode((get(kubectl, ns, "secret", "goqueue-cluster-ca-cert") or {})["data"]["ca.crt"])
    with broker_client(url, 10, BrokerTls(ca, server_name), operator_credentials(kubectl, ns)) as admin:
        admin.create_topic(TopicCreate(name="signed", partitions=1, replication_factor=1))
    apply(kubectl, ns, user_manifest("certified", authentication={"type": "tls"}, authorization={"acls": [
        {"resource": {"type": "topic", "name": "signed"}, "operations": ["produce"]}]}))
    ready = wait_condition(kubectl, ns, "goqueueuser", "certified", "Ready", READY_S)
    assert ready["status"]["certificateNotAfter"]
    secret = get(kubectl, ns, "secret", "certified") or {}
    assert secret["type"] == "kubernetes.io/tls"
    for key in ("tls.crt", "tls.key", "ca.crt"):
        (tmp_path / key).write_bytes(base64.b64decode(secret["data"][key]))
    with GoQueueClient(url, timeout_s=10, transport=AsUserCertificate(tmp_path, server_name)) as certified:
        certified.produce("signed", [ProduceRecord(value="signed by the cluster CA")])  # its ACL: User:certified
        with pytest.raises(Forbidden, match="User:certified"):
            certified.create_topic(TopicCreate(name="not-mine", partitions=1, replication_factor=1))


def test_a_tls_user_of_a_cluster_without_tls_is_refused_with_a_warning(
    operator: OperatorProcess, kubectl: Kubectl, goqueue_cluster: RunningCluster,
) -> None:
    ns = goqueue_cluster.namespace
    apply(kubectl, ns, {**user_manifest("certified"), "spec": {
        "clusterRef": {"name": "goqueue"}, "authentication": {"type": "tls"}}})
    refused = wait_condition(kubectl, ns, "goqueueuser", "certified", "Ready", READY_S, status="False")
    assert condition(refused, "Ready")["reason"] == "TlsAuthenticationUnavailable"
    assert "spec.tls.enabled false" in condition(refused, "Ready")["message"]
    wait_events(kubectl, ns, "certified", "TlsAuthenticationUnavailable")
    assert get(kubectl, ns, "secret", "certified") is None
    with goqueue_cluster.client() as admin:
        assert "certified" not in {u.name for u in admin.list_users()}


def test_quotas_need_a_scram_user(kubectl: Kubectl, goqueue_cluster: RunningCluster) -> None:
    refused = try_apply(kubectl, goqueue_cluster.namespace, user_manifest(
        "metered", authentication={"type": "tls"}, quotas={"producerByteRate": 1000}))
    assert "spec.quotas need authentication type scram" in refused.stderr, refused.stderr


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
