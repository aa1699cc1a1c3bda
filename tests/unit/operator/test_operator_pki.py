"""The cluster CA (issuer SelfSigned): certificates, the planner on a fake clock, the Secrets' layout, and the
pod template, Certificate and status that follow from spec.tls. Pure: no cluster, no socket."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509

from goqueue_operator.observed import PodFacts
from goqueue_operator.pki.certs import CertificateError, issue_ca, issue_leaf, read_bundle, read_certificate
from goqueue_operator.pki.execute import perform, policy_for
from goqueue_operator.pki.material import (
    PkiMaterial,
    broker_secret,
    ca_cert_secret,
    ca_secret,
    observe,
    read_material,
)
from goqueue_operator.pki.outcome import TlsOutcome
from goqueue_operator.pki.phase import tls_phase
from goqueue_operator.pki.plan import TRUST_PROPAGATION, PkiPolicy, PkiStepKind, next_pki_step
from goqueue_operator.pki.sans import broker_dns_names
from goqueue_operator.resources.certificate import build_certificate
from goqueue_operator.resources.names import pod_dns_name
from goqueue_operator.resources.pod_template import build_pod_template
from goqueue_operator.resources.tls import TlsPhase
from goqueue_operator.status.conditions import Condition
from goqueue_operator.views import ClusterView

pytestmark = pytest.mark.unit

JSON = dict[str, Any]
T0 = datetime(2027, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
K = PkiStepKind


def cluster(namespace: str = "apps", domain: str = "cluster.local", **tls: Any) -> ClusterView:
    body = {"metadata": {"name": "goqueue", "namespace": namespace, "uid": "uid-1", "generation": 1},
            "spec": {"tls": {"enabled": True, **tls}}}
    return ClusterView.from_body(body, cluster_domain=domain)


def run(material: PkiMaterial, now: datetime, view: ClusterView | None = None,
        policy: PkiPolicy | None = None) -> tuple[PkiMaterial, list[PkiStepKind]]:
    """What the executor does, without the API server: plan, perform, plan again until Idle (or Blocked)."""
    view = view or cluster()
    policy = policy or policy_for(view)
    taken: list[PkiStepKind] = []
    for _ in range(10):
        step = next_pki_step(observe(material, view.name), policy, now)
        if not step.acts:
            return material, taken
        material = perform(step, material, view, policy, now)
        taken.append(step.kind)
    raise AssertionError(f"no settling: {taken}")


def issuer_of(material: PkiMaterial) -> bytes | None:
    assert material.leaf is not None
    return read_certificate(material.leaf.cert_pem).issuer_key_id


def key_id(pem: bytes) -> bytes | None:
    return read_certificate(pem).key_id


def bundle_ids(pem: bytes) -> set[bytes | None]:
    return {c.key_id for c in read_bundle(pem)}


# -- issuing -----------------------------------------------------------------------------------------------------

def test_a_new_cluster_gets_a_ca_its_trust_bundle_and_a_broker_certificate_then_nothing_is_due() -> None:
    material, steps = run(PkiMaterial(), T0)
    assert steps == [K.CREATE_CA, K.PUBLISH_TRUST, K.ISSUE_LEAF]
    assert material.signing is not None
    assert issuer_of(material) == key_id(material.signing.cert_pem)
    assert bundle_ids(material.client_bundle) == bundle_ids(material.broker_bundle) == {
        key_id(material.signing.cert_pem)}
    leaf = read_certificate(material.leaf.cert_pem) if material.leaf else None
    assert leaf is not None
    assert leaf.not_after == T0 + 365 * DAY
    assert read_certificate(material.signing.cert_pem).not_after == T0 + 1825 * DAY
    assert run(material, T0 + 300 * DAY)[1] == []
    step = next_pki_step(observe(material, "goqueue"), policy_for(cluster()), T0)
    assert step.next_check == T0 + 335 * DAY  # renewAt: 30 days before the broker certificate expires


def test_the_broker_certificate_chains_to_the_ca_and_names_every_way_a_broker_is_reached() -> None:
    view = cluster(namespace="apps")
    material, _ = run(PkiMaterial(), T0, view)
    assert material.leaf is not None
    assert material.signing is not None
    leaf = x509.load_pem_x509_certificate(material.leaf.cert_pem)
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(material.signing.cert_pem))
    facts = read_certificate(material.leaf.cert_pem)
    names = set(facts.dns_names)
    # peers dial the advertised host (pod_template.py); a wildcard covers every ordinal, scaled up or not
    assert "*.goqueue-headless.apps.svc.cluster.local" in names
    for ordinal in (0, 2, 40):
        host = pod_dns_name("goqueue", "apps", ordinal, "cluster.local")
        assert host.split(".", 1)[1] == "goqueue-headless.apps.svc.cluster.local"
    assert {"goqueue", "goqueue.apps", "goqueue.apps.svc", "goqueue.apps.svc.cluster.local",
            "goqueue-metrics.apps.svc.cluster.local", "localhost"} <= names
    assert set(facts.ip_addresses) == {"127.0.0.1", "::1"}
    assert not facts.is_ca


def test_a_broker_certificate_is_never_valid_longer_than_its_ca() -> None:
    ca = issue_ca("ca", now=T0, validity=10 * DAY)
    leaf = issue_leaf(ca, "b", dns_names=["localhost"], ip_addresses=[], now=T0, validity=365 * DAY)
    assert read_certificate(leaf.cert_pem).not_after == read_certificate(ca.cert_pem).not_after


# -- renewal -----------------------------------------------------------------------------------------------------

def test_a_broker_certificate_within_renew_before_is_reissued_from_the_same_ca_and_trust_is_unchanged() -> None:
    material, _ = run(PkiMaterial(), T0)
    renewed, steps = run(material, T0 + 336 * DAY)
    assert steps == [K.ISSUE_LEAF]
    assert renewed.signing == material.signing
    assert renewed.client_bundle == material.client_bundle
    assert renewed.leaf != material.leaf
    assert renewed.leaf is not None
    assert read_certificate(renewed.leaf.cert_pem).not_after == T0 + 701 * DAY


def test_a_broker_certificate_naming_other_hosts_or_signed_elsewhere_is_reissued() -> None:
    material, _ = run(PkiMaterial(), T0)
    assert run(material, T0, cluster(domain="example.internal"))[1] == [K.ISSUE_LEAF]
    stranger = issue_ca("someone else", now=T0, validity=100 * DAY)  # e.g. cert-manager's, before a switch
    foreign = issue_leaf(stranger, "b", dns_names=broker_dns_names(cluster()), ip_addresses=["127.0.0.1", "::1"],
                         now=T0, validity=50 * DAY)
    assert run(replace(material, leaf=foreign), T0)[1] == [K.ISSUE_LEAF]
    assert run(replace(material, leaf=replace(foreign, cert_pem=b"garbage")), T0)[1] == [K.ISSUE_LEAF]


def test_ca_renewal_trusts_the_successor_first_then_signs_with_it_then_drops_the_old_ca_once_expired() -> None:
    material, _ = run(PkiMaterial(), T0)
    assert material.signing is not None
    old = key_id(material.signing.cert_pem)
    material, steps = run(material, T0 + 1640 * DAY)
    assert steps == [K.ISSUE_LEAF]  # a routine renewal on the way (1640 days on)

    # 180 days before the CA expires: a successor, added to every bundle while the old CA still signs
    renewing = T0 + 1646 * DAY
    material, steps = run(material, renewing)
    assert steps == [K.CREATE_SUCCESSOR, K.PUBLISH_TRUST]
    assert material.successor is not None
    new = key_id(material.successor.cert_pem)
    assert bundle_ids(material.broker_bundle) == bundle_ids(material.client_bundle) == {old, new}
    assert issuer_of(material) == old

    # not before the bundle has had time to reach every broker
    assert run(material, renewing + TRUST_PROPAGATION - timedelta(seconds=1))[1] == []
    material, steps = run(material, renewing + TRUST_PROPAGATION)
    assert steps == [K.PROMOTE_SUCCESSOR, K.ISSUE_LEAF]
    assert material.signing is not None
    assert key_id(material.signing.cert_pem) == new
    assert issuer_of(material) == new
    assert bundle_ids(material.broker_bundle) == {old, new}  # brokers still on the old certificate are believed

    # the old CA leaves the bundles once it has expired, not before
    assert run(material, T0 + 1825 * DAY - timedelta(seconds=1))[1] == []
    material, steps = run(material, T0 + 1825 * DAY)
    assert steps == [K.DROP_EXPIRED_CA, K.PUBLISH_TRUST]
    assert bundle_ids(material.broker_bundle) == bundle_ids(material.client_bundle) == {new}
    assert material.previous_cert is None


def test_an_expired_ca_without_a_successor_is_replaced_at_once() -> None:
    material, _ = run(PkiMaterial(), T0)
    material, steps = run(material, T0 + 2000 * DAY)
    assert steps == [K.CREATE_SUCCESSOR, K.PUBLISH_TRUST, K.PROMOTE_SUCCESSOR, K.DROP_EXPIRED_CA, K.PUBLISH_TRUST,
                     K.ISSUE_LEAF]


def test_a_ca_secret_the_operator_cannot_use_blocks_with_the_fix_and_is_never_replaced() -> None:
    material, _ = run(PkiMaterial(), T0)
    assert material.signing is not None
    other = issue_ca("x", now=T0, validity=DAY)
    broken = replace(material, signing=replace(material.signing, key_pem=other.key_pem))
    step = next_pki_step(observe(broken, "goqueue"), policy_for(cluster()), T0)
    assert step.kind is K.BLOCKED
    assert "goqueue-cluster-ca ca.crt's key does not belong to its certificate" in step.message
    assert "delete Secret goqueue-cluster-ca" in step.message
    with pytest.raises(CertificateError):
        read_certificate(b"not a certificate")


# -- Secrets -----------------------------------------------------------------------------------------------------

def decoded(secret: JSON) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_secrets_layout_keys_apart_from_certificates_and_owned_by_the_cluster() -> None:
    view = cluster()
    material, _ = run(PkiMaterial(), T0, view)
    ca, ca_cert, broker = ca_secret(view, material), ca_cert_secret(view, material), broker_secret(view, material)
    assert [s["metadata"]["name"] for s in (ca, ca_cert, broker)] == [
        "goqueue-cluster-ca", "goqueue-cluster-ca-cert", "goqueue-broker-tls"]
    assert set(decoded(ca)) == {"ca.crt", "ca.key"}
    assert set(decoded(ca_cert)) == {"ca.crt"}  # what clients mount: no key
    assert broker["type"] == "kubernetes.io/tls"  # cert-manager's layout
    assert set(decoded(broker)) == {"tls.crt", "tls.key", "ca.crt"}
    assert decoded(broker)["ca.crt"] == decoded(ca_cert)["ca.crt"]
    assert b"PRIVATE KEY" not in decoded(ca_cert)["ca.crt"] + decoded(broker)["ca.crt"]
    for secret in (ca, ca_cert, broker):
        (owner,) = secret["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "GoQueueCluster", "goqueue", "uid-1", True)
    # read back, it is the same material: the executor's next reconcile sees what this one wrote
    again = read_material({**ca, "data": ca["data"]}, ca_cert, broker)
    assert again == material


# -- what spec.tls changes elsewhere ------------------------------------------------------------------------------

def container_of(template: JSON) -> JSON:
    (broker,) = template["spec"]["containers"]
    return broker


def test_the_pod_mounts_the_broker_secret_read_only_and_names_the_files_never_their_contents() -> None:
    template = build_pod_template(cluster(clientAuth="required"), 3)
    broker = container_of(template)
    env = {e["name"]: e.get("value") for e in broker["env"]}
    assert env["GOQUEUE_TLS_CERTFILE"] == "/var/run/goqueue/tls/tls.crt"
    assert env["GOQUEUE_TLS_KEYFILE"] == "/var/run/goqueue/tls/tls.key"
    assert env["GOQUEUE_TLS_CAFILE"] == "/var/run/goqueue/tls/ca.crt"
    assert env["GOQUEUE_TLS_CLIENTAUTH"] == "required"
    # the operator's own CA signs GoQueueUser certificates: the brokers take them as principals
    assert env["GOQUEUE_TLS_CLIENTCAFILE"] == "/var/run/goqueue/tls/ca.crt"
    assert env["GOQUEUE_TLS_LISTENERS"] == "http,grpc,internal,raft"  # a new cluster: Raft TLS-only from the start
    # in-pod CLIs (the runbook's kubectl exec ... goqueue-cli) reach the broker over https, trusting the CA
    assert (env["GOQUEUE_SERVER"], env["GOQUEUE_CA_FILE"]) == ("https://localhost:8080",
                                                              "/var/run/goqueue/tls/ca.crt")
    assert "localhost" in broker_dns_names(cluster())
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "tls"]
    assert volume == {"name": "tls", "secret": {"secretName": "goqueue-broker-tls", "defaultMode": 0o440}}
    (mount,) = [m for m in broker["volumeMounts"] if m["name"] == "tls"]
    assert mount == {"name": "tls", "mountPath": "/var/run/goqueue/tls", "readOnly": True}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert broker[probe]["httpGet"]["scheme"] == "HTTPS"
    # the advertised host peers verify is covered by the certificate's wildcard
    advertised = env["GOQUEUE_BROKER_ADVERTISEDHOST"]
    assert advertised is not None
    assert f"*.{advertised.split('.', 1)[1]}" in broker_dns_names(cluster())


def test_tls_off_gives_the_pod_no_certificate() -> None:
    off = ClusterView.from_body({"metadata": {"name": "goqueue", "namespace": "apps", "uid": "u"},
                                 "spec": {"tls": {"enabled": False, "internal": False}}})
    template = build_pod_template(off, 3)
    assert not [e for e in container_of(template)["env"] if e["name"].startswith("GOQUEUE_TLS_")]
    assert "GOQUEUE_SERVER" not in {e["name"] for e in container_of(template)["env"]}
    assert not [v for v in template["spec"]["volumes"] if v["name"] == "tls"]
    assert container_of(template)["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_by_default_brokers_talk_to_each_other_over_tls_and_clients_stay_on_plain_listeners() -> None:
    """spec.tls.internal defaults to true (Strimzi's replication listener is always TLS): the certificates and the CA
    are mounted and only the broker-to-broker listeners (internal, Raft) speak TLS; probes, the in-pod CLIs and
    clients keep plain http."""
    bare = ClusterView.from_body({"metadata": {"name": "goqueue", "namespace": "apps", "uid": "u"}, "spec": {}})
    assert TlsPhase.of(bare) is TlsPhase.INTERNAL_RAFT
    template = build_pod_template(bare, 3)
    env = {e["name"]: e.get("value") for e in container_of(template)["env"]}
    assert env["GOQUEUE_TLS_CERTFILE"] == "/var/run/goqueue/tls/tls.crt"
    assert env["GOQUEUE_TLS_CAFILE"] == "/var/run/goqueue/tls/ca.crt"
    assert env["GOQUEUE_TLS_LISTENERS"] == "internal,raft"
    assert not {"GOQUEUE_SERVER", "GOQUEUE_TLS_CLIENTAUTH", "GOQUEUE_TLS_CLIENTCAFILE"} & set(env)
    assert container_of(template)["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    facts = pod_from(template, 0)
    assert (facts.tls, facts.internal_tls, facts.raft_tls, facts.certificate) == (False, True, True, True)


@pytest.mark.parametrize("enabled", [False, True], ids=["internal", "on"])
def test_raft_is_tls_only_from_a_clusters_first_broker_and_brokers_that_began_offering_keep_offering(
        enabled: bool) -> None:
    """A broker image from before Raft TLS speaks Raft plain, and only an offering broker (a certificate, raft not
    in GOQUEUE_TLS_LISTENERS) can talk to it. So brokers running without TLS-only Raft — an older operator's, whose
    template this operator must not change (that would roll them all), or ones that went through Off — keep
    offering; a cluster's first brokers get TLS-only Raft, and keep it."""
    spec = cluster(enabled=enabled)
    target = TlsPhase.of(spec)
    offering = TlsPhase.ON if enabled else TlsPhase.INTERNAL
    assert target is (TlsPhase.ON_RAFT if enabled else TlsPhase.INTERNAL_RAFT)
    assert tls_phase(target, []) is target  # no broker yet: TLS-only from the first one
    required = [pod_from(build_pod_template(spec, 3, target), i) for i in range(3)]
    assert all(p.raft_tls for p in required)
    assert tls_phase(target, required) is target
    older = [pod_from(build_pod_template(spec, 3, offering), i) for i in range(3)]  # what an older operator ran
    assert not any(p.raft_tls for p in older)
    assert tls_phase(target, older) is offering
    assert tls_phase(target, [required[0], *older[1:]]) is offering
    env = {e["name"]: e.get("value") for e in container_of(build_pod_template(spec, 3, offering))["env"]}
    assert env.get("GOQUEUE_TLS_LISTENERS") == (None if enabled else "internal")  # the older operator's template
    # switching the client listeners keeps Raft as it was
    other = TlsPhase.INTERNAL_RAFT if enabled else TlsPhase.ON_RAFT
    assert tls_phase(other, required) is other
    assert tls_phase(other, older) is other.raft_offered()


def test_turning_internal_tls_on_mounts_every_certificate_before_any_internal_listener_requires_it() -> None:
    plain = [pod_from(build_pod_template(cluster(enabled=False, internal=False), 3), i) for i in range(3)]
    internal = cluster(enabled=False)
    assert tls_phase(TlsPhase.INTERNAL, plain) is TlsPhase.CERTIFICATES
    first = build_pod_template(internal, 3, TlsPhase.CERTIFICATES)
    env = {e["name"]: e.get("value") for e in container_of(first)["env"]}
    assert (env["GOQUEUE_TLS_CERTFILE"], env["GOQUEUE_TLS_LISTENERS"]) == ("/var/run/goqueue/tls/tls.crt", "")
    assert tls_phase(TlsPhase.INTERNAL, [pod_from(first, 0), *plain[1:]]) is TlsPhase.CERTIFICATES
    every = [pod_from(first, i) for i in range(3)]
    assert tls_phase(TlsPhase.INTERNAL, every) is TlsPhase.INTERNAL
    second = [pod_from(build_pod_template(internal, 3, TlsPhase.INTERNAL), i) for i in range(3)]
    # and back: the internal listener stops requiring TLS everywhere before any broker loses the CA
    assert tls_phase(TlsPhase.OFF, second) is TlsPhase.CERTIFICATES
    assert tls_phase(TlsPhase.OFF, [every[0], *second[1:]]) is TlsPhase.CERTIFICATES
    assert tls_phase(TlsPhase.OFF, every) is TlsPhase.OFF


def test_client_listeners_switch_in_one_roll_when_the_internal_listener_already_speaks_tls() -> None:
    internal = [pod_from(build_pod_template(cluster(enabled=False), 3, TlsPhase.INTERNAL), i) for i in range(3)]
    assert tls_phase(TlsPhase.ON, internal) is TlsPhase.ON
    on = [pod_from(build_pod_template(cluster(), 3, TlsPhase.ON), i) for i in range(3)]
    assert tls_phase(TlsPhase.INTERNAL, on) is TlsPhase.INTERNAL
    assert tls_phase(TlsPhase.INTERNAL, [internal[0], *on[1:]]) is TlsPhase.INTERNAL


def test_cert_manager_certificate_asks_for_the_same_names_lifetimes_and_secret() -> None:
    view = cluster(issuer="CertManager", issuerRef={"name": "ca-issuer", "kind": "ClusterIssuer"},
                   validityDays=90, renewBeforeDays=15)
    certificate = build_certificate(view)
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["metadata"]["name"] == "goqueue-broker-tls"
    spec = certificate["spec"]
    assert spec["secretName"] == "goqueue-broker-tls"
    assert spec["dnsNames"] == list(broker_dns_names(view))
    assert spec["ipAddresses"] == ["127.0.0.1", "::1"]
    assert (spec["duration"], spec["renewBefore"]) == ("2160h", "360h")
    assert spec["issuerRef"] == {"name": "ca-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert set(spec["usages"]) >= {"server auth", "client auth"}


def test_status_carries_the_tls_condition_and_expiry() -> None:
    from goqueue_operator.observed import ClusterObservation
    from goqueue_operator.status.cluster import ClusterOutcome, cluster_status

    outcome = TlsOutcome(Condition("TLSReady", True, "CertificatesValid", "valid"),
                         {"issuer": "SelfSigned", "notAfter": "2028-01-01T00:00:00Z"})
    status = cluster_status(cluster(), ClusterObservation(None), ClusterOutcome(tls=outcome), now=T0)
    assert status["tls"] == {"issuer": "SelfSigned", "notAfter": "2028-01-01T00:00:00Z"}
    (tls,) = [c for c in status["conditions"] if c["type"] == "TLSReady"]
    assert (tls["status"], tls["reason"]) == ("True", "CertificatesValid")
    assert TlsOutcome.failed("CertManagerNotInstalled", "m").condition.warning


# -- turning TLS on and off on running brokers: two rolls ----------------------------------------------------------

def pod_from(template: JSON, ordinal: int) -> PodFacts:
    """A pod as the StatefulSet would make it from `template`, read back the way the operator observes it."""
    pod = {"metadata": {"name": f"goqueue-{ordinal}", "uid": f"u{ordinal}", "labels": {}},
           "spec": template["spec"], "status": {"podIP": f"10.0.0.{ordinal}",
                                                 "conditions": [{"type": "Ready", "status": "True"}]}}
    facts = PodFacts.of(pod)
    assert facts is not None
    return facts


def test_turning_tls_on_gives_every_broker_its_certificate_before_the_internal_listener_speaks_tls() -> None:
    off, on = cluster(enabled=False, internal=False), cluster()
    plain = [pod_from(build_pod_template(off, 3), i) for i in range(3)]
    assert tls_phase(TlsPhase.ON, []) is TlsPhase.ON  # a new cluster: nothing to move through
    assert tls_phase(TlsPhase.ON, plain) is TlsPhase.CLIENT_LISTENERS
    first = build_pod_template(on, 3, TlsPhase.CLIENT_LISTENERS)
    env = {e["name"]: e.get("value") for e in container_of(first)["env"]}
    assert env["GOQUEUE_TLS_LISTENERS"] == "http,grpc"
    assert container_of(first)["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    rolled = [pod_from(first, 0), *plain[1:]]
    assert tls_phase(TlsPhase.ON, rolled) is TlsPhase.CLIENT_LISTENERS  # one broker is still without the CA
    assert (rolled[0].tls, rolled[0].internal_tls) == (True, False)
    every = [pod_from(first, i) for i in range(3)]
    assert tls_phase(TlsPhase.ON, every) is TlsPhase.ON
    second = build_pod_template(on, 3, TlsPhase.ON)
    assert second != first  # a second roll
    assert "GOQUEUE_TLS_LISTENERS" not in {e["name"] for e in container_of(second)["env"]}
    assert pod_from(second, 0).internal_tls


def test_turning_tls_off_closes_the_internal_listener_first_and_keeps_the_certificates_until_then() -> None:
    on = [pod_from(build_pod_template(cluster(), 3, TlsPhase.ON), i) for i in range(3)]
    assert tls_phase(TlsPhase.OFF, on) is TlsPhase.CLIENT_LISTENERS
    client_only = [pod_from(build_pod_template(cluster(enabled=False), 3, TlsPhase.CLIENT_LISTENERS), i)
                   for i in range(3)]
    assert tls_phase(TlsPhase.OFF, [client_only[0], *on[1:]]) is TlsPhase.CLIENT_LISTENERS
    assert tls_phase(TlsPhase.OFF, client_only) is TlsPhase.OFF


def test_prometheus_scrapes_https_verifying_the_metrics_service_name_against_the_cluster_ca() -> None:
    from goqueue_operator.resources.monitoring import build_service_monitor

    (endpoint,) = build_service_monitor(cluster())["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"ca": {"secret": {"name": "goqueue-cluster-ca-cert", "key": "ca.crt"}},
                                     "serverName": "goqueue-metrics.apps.svc"}
    assert endpoint["tlsConfig"]["serverName"] in broker_dns_names(cluster())
    (plain,) = build_service_monitor(cluster(enabled=False))["spec"]["endpoints"]
    assert "scheme" not in plain


def test_no_broker_moves_towards_tls_before_its_certificate_exists_and_none_moves_back_when_it_goes_bad() -> None:
    plain = [pod_from(build_pod_template(cluster(enabled=False, internal=False), 3), i) for i in range(3)]
    for target in (TlsPhase.ON, TlsPhase.INTERNAL):
        assert tls_phase(target, [], certificate_ready=False) is TlsPhase.OFF  # cert-manager has not issued yet
        assert tls_phase(target, plain, certificate_ready=False) is TlsPhase.OFF
    on = [pod_from(build_pod_template(cluster(), 3, TlsPhase.ON), i) for i in range(3)]
    assert tls_phase(TlsPhase.ON, on, certificate_ready=False) is TlsPhase.ON


def test_certificates_of_a_cert_manager_issuer_name_no_principal() -> None:
    """A cert-manager issuer may sign for anyone who asks (a shared ClusterIssuer): the brokers are given no client
    CA, so no certificate it signs logs anyone in (tls.clientCaFile unset)."""
    template = build_pod_template(cluster(issuer="CertManager", issuerRef={"name": "corp"}), 3)
    env = {e["name"]: e.get("value") for e in container_of(template)["env"]}
    assert env["GOQUEUE_TLS_CAFILE"] == "/var/run/goqueue/tls/ca.crt"
    assert "GOQUEUE_TLS_CLIENTCAFILE" not in env


def test_the_operator_shows_its_certificate_while_any_broker_still_requires_one() -> None:
    """Turning `clientAuth: required` off (or TLS down to the internal listener) must not lock the operator out of
    the brokers the roll has not replaced yet: it keeps presenting its certificate until none requires it."""
    from goqueue_operator.pki.identity import needs_identity

    required = cluster(clientAuth="required")
    old = [pod_from(build_pod_template(required, 3, TlsPhase.ON), i) for i in range(3)]
    assert all(p.requires_client_certificate for p in old)
    assert needs_identity(required, [])
    for relaxed in (cluster(clientAuth="requested"), cluster(enabled=False)):
        assert needs_identity(relaxed, [pod_from(build_pod_template(relaxed, 3, TlsPhase.of(relaxed)), 0), *old[1:]])
        rolled = [pod_from(build_pod_template(relaxed, 3, TlsPhase.of(relaxed)), i) for i in range(3)]
        assert not needs_identity(relaxed, rolled)
    assert not needs_identity(cluster(issuer="CertManager", issuerRef={"name": "corp"}), old)
