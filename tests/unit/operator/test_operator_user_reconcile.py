"""GoQueueUser: its ACLs as the brokers' entries, the plan that makes the brokers hold exactly those, and the
reconcile (credentials, rotation, quotas, ACLs, deletion, refusals) against an in-memory broker and Kubernetes."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from goqueue.errors import UserNotFound
from goqueue.models import AclSpec, UserInfo
from goqueue_operator.handlers.reconciler import Session
from goqueue_operator.handlers.user import UserKind
from goqueue_operator.pki.certs import CertificateError, KeyPair, issue_ca
from goqueue_operator.users.acls import broker_acls, key, plan_acls
from goqueue_operator.users.client_cert import certificate_problem, issue_client_certificate
from goqueue_operator.users.view import AclRuleSpec, UserView

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def rule(**fields: Any) -> AclRuleSpec:
    return AclRuleSpec.model_validate(fields)


def acl(resource_type: str, name: str, operation: str, pattern: str = "literal", allow: bool = True,
        principal: str = "User:billing") -> AclSpec:
    return AclSpec.model_validate({"principal": principal, "resourceType": resource_type, "name": name,
                                   "pattern": pattern, "operation": operation, "allow": allow})


# -- the mapping ---------------------------------------------------------------------------------------------------

def test_each_operation_of_a_rule_is_one_broker_entry() -> None:
    found = broker_acls("User:billing", [
        rule(resource={"type": "topic", "name": "orders"}, operations=["consume", "describe"]),
        rule(resource={"type": "topic", "name": "team-a.", "patternType": "prefix"}, operations=["all"]),
        rule(resource={"type": "group", "name": "billing"}, operations=["consume"]),
        rule(resource={"type": "topic", "name": "payroll"}, operations=["consume"], type="deny"),
        rule(resource={"type": "cluster"}, operations=["admin"]),
    ])
    assert {key(a) for a in found} == {
        ("User:billing", "topic", "orders", "literal", "consume", True),
        ("User:billing", "topic", "orders", "literal", "describe", True),
        ("User:billing", "topic", "team-a.", "prefixed", "all", True),  # the CRD's prefix is the brokers' prefixed
        ("User:billing", "group", "billing", "literal", "consume", True),
        ("User:billing", "topic", "payroll", "literal", "consume", False),
        ("User:billing", "cluster", "*", "literal", "admin", True),  # the one cluster
    }


def test_a_rule_repeated_is_one_entry_and_the_order_is_stable() -> None:
    rules = [rule(resource={"type": "topic", "name": "*"}, operations=["describe", "describe"]),
             rule(resource={"type": "topic", "name": "*"}, operations=["describe"])]
    assert broker_acls("User:a", rules) == broker_acls("User:a", list(reversed(rules)))
    assert len(broker_acls("User:a", rules)) == 1


def test_the_plan_adds_what_is_missing_and_removes_what_the_spec_lacks() -> None:
    desired = [acl("topic", "orders", "consume"), acl("group", "billing", "consume")]
    live = [acl("topic", "orders", "consume"), acl("topic", "orders", "delete")]
    plan = plan_acls(desired, live)
    assert [key(a) for a in plan.add] == [key(acl("group", "billing", "consume"))]
    assert [key(a) for a in plan.remove] == [key(acl("topic", "orders", "delete"))]
    assert "+allow consume on group 'billing'" in plan.summary()
    assert plan_acls(desired, desired).empty


# -- the reconcile -------------------------------------------------------------------------------------------------

class FakeBroker:
    """What the handler asks the operator's GoQueueClient, over in-memory users and ACLs."""

    server = "http://10.0.0.1:8080"

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}
        self.quotas: dict[str, tuple[int | None, int | None]] = {}
        self.acls: dict[tuple[str, str, str, str, str, bool], AclSpec] = {}

    def list_users(self) -> list[UserInfo]:
        return [UserInfo(name=n, iterations=8192, producer_byte_rate=self.quotas.get(n, (None, None))[0],
                         consumer_byte_rate=self.quotas.get(n, (None, None))[1]) for n in sorted(self.passwords)]

    def upsert_user(self, name: str, password: str) -> UserInfo:
        self.passwords[name] = password
        return UserInfo(name=name, iterations=8192)

    def set_user_quotas(self, name: str, producer: int | None, consumer: int | None) -> UserInfo:
        self.quotas[name] = (producer, consumer)
        return UserInfo(name=name, iterations=8192)

    def delete_user(self, name: str) -> None:
        if self.passwords.pop(name, None) is None:
            raise UserNotFound(f"user {name!r} does not exist")
        self.quotas.pop(name, None)

    def list_acls(self, principal: str | None = None) -> list[AclSpec]:
        return [a for a in self.acls.values() if principal in (None, a.principal)]

    def add_acl(self, entry: AclSpec) -> AclSpec:
        self.acls[key(entry)] = entry
        return entry

    def remove_acl(self, entry: AclSpec) -> None:
        del self.acls[key(entry)]


class FakeKube:
    def __init__(self) -> None:
        self.secrets: dict[str, JSON] = {}
        self.clusters: dict[str, JSON] = {"main": {"metadata": {"name": "main", "namespace": "apps"}, "spec": {}}}
        self.patches: list[tuple[str, str, JSON]] = []

    async def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        return (self.clusters if kind == "GoQueueCluster" else self.secrets).get(name)

    async def create(self, obj: JSON) -> JSON:
        data = obj.get("data") or {k: base64.b64encode(v.encode()).decode() for k, v in obj["stringData"].items()}
        self.secrets[obj["metadata"]["name"]] = {"metadata": obj["metadata"], "type": obj["type"], "data": data}
        return obj

    async def patch(self, kind: str, namespace: str, name: str, patch: JSON) -> JSON:
        self.patches.append((kind, name, patch))
        if kind == "Secret":
            self.secrets[name]["data"].update(patch.get("data") or {
                k: base64.b64encode(v.encode()).decode() for k, v in patch["stringData"].items()})
        return patch


def user(annotations: dict[str, str] | None = None, name: str = "billing", **spec: Any) -> UserView:
    body = {"metadata": {"name": name, "namespace": "apps", "uid": "uid-u", "generation": 1,
                         "annotations": annotations or {}},
            "spec": {"clusterRef": {"name": "main"}, "authentication": {"type": "scram"}, **spec}}
    return UserView.from_body(body)


class Harness:
    def __init__(self) -> None:
        self.broker, self.kube = FakeBroker(), FakeKube()
        self.passwords = iter(f"password-{n}-{'x' * 40}" for n in range(100))

        async def logs_in(server: str, name: str, password: str, tls: object) -> bool:
            return self.broker.passwords.get(name) == password

        self.kind = UserKind(self.kube, new_password=lambda: next(self.passwords),  # type: ignore[arg-type]
                             logs_in=logs_in)

    def declare(self, view: UserView, spec_changed: bool = True) -> Any:
        async def persist(_: JSON) -> None:
            return None

        return asyncio.run(self.kind.declare(view, self.broker, Session(NOW, spec_changed, persist)))  # type: ignore[arg-type]

    def secret_password(self) -> str:
        return base64.b64decode(self.kube.secrets["billing"]["data"]["password"]).decode()


ACLS = {"acls": [{"resource": {"type": "topic", "name": "orders"}, "operations": ["consume"]},
                 {"resource": {"type": "group", "name": "billing"}, "operations": ["consume"]}]}


def test_a_new_user_gets_a_secret_the_brokers_credential_quotas_and_acls() -> None:
    h = Harness()
    declared = h.declare(user(authorization=ACLS, quotas={"consumerByteRate": 1000}))
    assert declared.ready.status is True
    secret = h.kube.secrets["billing"]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-u"  # deleted with the GoQueueUser
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items() if k != "password"} == {
        "user": "billing", "mechanism": "SCRAM-SHA-512"}
    assert h.broker.passwords["billing"] == h.secret_password()
    assert h.broker.quotas["billing"] == (None, 1000)
    assert {a.name for a in h.broker.acls.values()} == {"orders", "billing"}
    assert [r for r, *_ in declared.actions] == ["UserCreated", "QuotasUpdated", "AclsUpdated"]
    assert declared.status == {"principal": "User:billing", "secret": "billing", "acls": 2,
                               "credentialsIssuedAt": "2026-12-06T12:00:00Z"}


def test_a_user_in_sync_changes_nothing() -> None:
    h = Harness()
    h.declare(user(authorization=ACLS))
    again = h.declare(user(authorization=ACLS), spec_changed=False)
    assert again.actions == []
    assert again.ready.reason == "Synced"


def test_acls_are_reconciled_to_exactly_the_spec_and_drift_is_a_warning() -> None:
    h = Harness()
    h.declare(user(authorization=ACLS))
    h.broker.add_acl(acl("topic", "payroll", "consume"))  # behind the operator's back
    del h.broker.acls[key(acl("group", "billing", "consume"))]
    repaired = h.declare(user(authorization=ACLS), spec_changed=False)
    assert {a.name for a in h.broker.acls.values()} == {"orders", "billing"}
    assert repaired.actions[0][0] == "AclsRepaired"
    assert repaired.actions[0][2] is True  # a Warning Event
    other = acl("topic", "orders", "consume", principal="User:someone-else")
    h.broker.add_acl(other)
    h.declare(user(authorization={"acls": []}))
    assert list(h.broker.acls.values()) == [other]  # the user's entries gone; nobody else's touched


def test_a_password_changed_behind_the_operators_back_is_put_back() -> None:
    h = Harness()
    h.declare(user())
    h.broker.upsert_user("billing", "changed-by-hand")
    repaired = h.declare(user(), spec_changed=False)
    assert h.broker.passwords["billing"] == h.secret_password()
    assert [(r, warn) for r, _, warn in repaired.actions] == [("CredentialsRepaired", True)]


def test_a_user_missing_on_the_brokers_is_created_from_its_secret() -> None:
    h = Harness()
    h.declare(user())
    h.broker.delete_user("billing")  # e.g. the cluster was recreated
    h.declare(user(), spec_changed=False)
    assert h.broker.passwords["billing"] == h.secret_password()


def test_rotation_issues_a_new_password_and_removes_the_annotation() -> None:
    h = Harness()
    h.declare(user())
    old = h.secret_password()
    rotated = h.declare(user(annotations={"goqueue.io/rotate-credentials": "true"}))
    assert h.secret_password() != old
    assert h.broker.passwords["billing"] == h.secret_password()
    assert rotated.actions[0][0] == "CredentialsRotated"
    assert ("GoQueueUser", "billing", {"metadata": {"annotations": {"goqueue.io/rotate-credentials": None}}}) in \
        h.kube.patches


def test_quotas_follow_the_spec_and_go_when_removed() -> None:
    h = Harness()
    h.declare(user(quotas={"producerByteRate": 5000}))
    assert h.broker.quotas["billing"] == (5000, None)
    h.declare(user())
    assert h.broker.quotas["billing"] == (None, None)


def test_a_tls_user_of_a_cluster_without_tls_is_refused_and_nothing_is_created() -> None:
    h = Harness()
    refused = h.declare(user(authentication={"type": "tls"}, authorization=ACLS))
    assert (refused.ready.status, refused.ready.reason, refused.ready.warning) == (
        False, "TlsAuthenticationUnavailable", True)
    assert "spec.tls.enabled false" in refused.ready.message
    assert (h.kube.secrets, h.broker.passwords, h.broker.acls) == ({}, {}, {})
    h.kube.clusters["main"]["spec"] = {"tls": {"enabled": True, "issuer": "CertManager",
                                               "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}}
    assert "cert-manager" in h.declare(user(authentication={"type": "tls"})).ready.message


def with_cluster_ca(h: Harness, ca: KeyPair | None = None) -> KeyPair:
    ca = ca or issue_ca("main cluster CA", now=NOW, validity=timedelta(days=1825))
    h.kube.clusters["main"]["spec"] = {"tls": {"enabled": True}}
    h.kube.secrets["main-cluster-ca"] = {"metadata": {}, "data": {
        "ca.crt": base64.b64encode(ca.cert_pem).decode(), "ca.key": base64.b64encode(ca.key_pem).decode()}}
    h.kube.secrets["main-cluster-ca-cert"] = {"metadata": {},
                                              "data": {"ca.crt": base64.b64encode(ca.cert_pem).decode()}}
    return ca


def user_certificate(h: Harness) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(h.kube.secrets["billing"]["data"]["tls.crt"]))


def test_a_tls_user_gets_a_client_certificate_signed_by_the_cluster_ca() -> None:
    h = Harness()
    ca = with_cluster_ca(h)
    declared = h.declare(user(authentication={"type": "tls"}, authorization=ACLS))
    assert declared.ready.status is True, declared.ready.message
    secret = h.kube.secrets["billing"]
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca.cert_pem
    cert = user_certificate(h)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "billing"  # User:billing
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_pem))
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # proves a client; cannot serve TLS
    assert h.broker.passwords == {}  # no SCRAM credential for a tls user
    assert {a.name for a in h.broker.acls.values()} == {"orders", "billing"}
    assert declared.status["certificateNotAfter"] == "2027-12-06T12:00:00Z"


def test_a_tls_certificate_is_issued_again_on_rotation_renewal_or_a_new_ca_and_only_then() -> None:
    h = Harness()
    with_cluster_ca(h)
    h.declare(user(authentication={"type": "tls"}))
    first = user_certificate(h).serial_number
    assert h.declare(user(authentication={"type": "tls"}), spec_changed=False).actions == []
    assert user_certificate(h).serial_number == first
    rotated = h.declare(user(authentication={"type": "tls"}, annotations={"goqueue.io/rotate-credentials": "true"}))
    assert rotated.actions[0][0] == "CredentialsRotated"
    second = user_certificate(h).serial_number
    assert second != first
    with_cluster_ca(h)  # the cluster CA replaced: the old certificate no longer chains to the signing CA
    renewed = h.declare(user(authentication={"type": "tls"}), spec_changed=False)
    assert "another CA" in renewed.actions[0][1]
    assert user_certificate(h).serial_number != second


def test_certificate_problems_name_why_a_new_one_is_needed() -> None:
    ca = issue_ca("ca", now=NOW, validity=timedelta(days=1825))
    pair = issue_client_certificate(ca, "billing", now=NOW, validity=timedelta(days=365))
    check = partial(certificate_problem, signing_ca_pem=ca.cert_pem, user="billing", renew_before=timedelta(days=30))
    assert check(pair.cert_pem, pair.key_pem, now=NOW) is None
    assert "renewal due" in str(check(pair.cert_pem, pair.key_pem, now=NOW + timedelta(days=340)))
    assert check(None, None, now=NOW) == "no certificate yet"
    other = issue_client_certificate(ca, "someone", now=NOW, validity=timedelta(days=365))
    assert "not CN=billing" in str(check(other.cert_pem, other.key_pem, now=NOW))
    assert "key does not belong" in str(check(pair.cert_pem, other.key_pem, now=NOW))
    with pytest.raises(CertificateError, match="longer than a certificate's CN"):
        issue_client_certificate(ca, "x" * 65, now=NOW, validity=timedelta(days=1))


def test_a_secret_of_that_name_owned_by_something_else_is_never_overwritten() -> None:
    h = Harness()
    h.kube.secrets["billing"] = {"metadata": {"name": "billing"}, "data": {"password": "c2VjcmV0"}}
    refused = h.declare(user())
    assert refused.ready.reason == "SecretConflict"
    assert h.broker.passwords == {}


def test_deleting_removes_the_user_and_every_acl_of_its_principal() -> None:
    h = Harness()
    h.declare(user(authorization=ACLS))
    h.broker.add_acl(acl("topic", "extra", "produce"))
    reason, message = asyncio.run(h.kind.delete(user(), h.broker))  # type: ignore[arg-type]
    assert (reason, h.broker.passwords, h.broker.acls) == ("UserDeleted", {}, {})
    assert "3 ACL entries" in message
    reason, message = asyncio.run(h.kind.delete(user(), h.broker))  # type: ignore[arg-type]
    assert "was not on the brokers" in message


@pytest.mark.parametrize(("name", "config", "says"), [
    ("goqueue-operator", {}, "the operator's own principal"),
    ("ops", {"security.superUsers": "User:ops,User:audit"}, "super user of the cluster"),
    ("payments-raft", {}, "'-raft'"),
    ("payments-operator-credentials", {}, "'-operator-credentials'"),
    ("payments-cluster-ca", {}, "'-cluster-ca'"),
], ids=["operator", "super-user", "raft-secret", "operator-secret", "cluster-ca"])
@pytest.mark.parametrize("authentication", ["scram", "tls"])
def test_a_name_that_would_give_more_than_a_user_is_refused_and_nothing_is_made(
        name: str, config: dict[str, str], says: str, authentication: str) -> None:
    """A GoQueueUser named after the operator's principal or a super user would hand whoever may create
    GoQueueUsers a super user's password or certificate; one named like a cluster's credential Secret would leave a
    Secret a cluster created later adopts as its Raft or admin password."""
    h = Harness()
    h.kube.clusters["main"]["spec"] = {"config": config, "tls": {"enabled": True}}
    declared = h.declare(user(name=name, authentication={"type": authentication}))
    assert (declared.ready.status, declared.ready.reason) == (False, "InvalidSpec")
    assert says in declared.ready.message
    assert h.kube.secrets == {}
    assert h.broker.passwords == {}
