"""spec.tls on the real control plane: the operator's cluster CA and broker certificate as Secrets, the pods that
mount them, re-issuing a certificate that went bad, and cert-manager mode against a copy of its Certificate CRD
(the test plays cert-manager by writing the Secret), and brokers that serve TLS behind it: Ready through HTTPS
probes, reached by the operator over verified https.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from kubernetes import client as k8s
from operator_kube import (
    apply,
    cluster_manifest,
    condition,
    get,
    operator_credentials,
    topic_manifest,
    try_apply,
    wait_condition,
    wait_events,
)
from operator_process import OperatorProcess

from goqueue.client.http import GoQueueClient
from goqueue.errors import Unauthenticated
from goqueue.models import ProduceRecord, TopicCreate
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until
from goqueue_operator.brokers import BrokerTls, broker_client, broker_url
from goqueue_operator.pki.certs import issue_ca, issue_leaf, read_bundle, read_certificate

pytestmark = pytest.mark.integration

CERTIFICATE_CRD = Path(__file__).parent / "fixtures" / "cert-manager-certificate-crd.yaml"
JSON = dict[str, Any]


def secret(core: k8s.CoreV1Api, namespace: str, name: str) -> dict[str, bytes]:
    found = core.read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v) for k, v in (found.data or {}).items()}


def wait_secret(core: k8s.CoreV1Api, namespace: str, name: str, timeout_s: float = 60) -> dict[str, bytes]:
    def present() -> dict[str, bytes] | None:
        try:
            return secret(core, namespace, name)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    found: dict[str, bytes] = wait_until(present, timeout_s, interval_s=0.5, message=f"Secret {name}")
    return found


def check_secrets(core: k8s.CoreV1Api, ns: str, cluster: JSON) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The three Secrets' layout, owners and certificates; returns (cluster-ca, broker-tls) data."""
    ca = secret(core, ns, "goqueue-cluster-ca")
    broker = secret(core, ns, "goqueue-broker-tls")
    assert set(ca) == {"ca.crt", "ca.key"}
    assert set(secret(core, ns, "goqueue-cluster-ca-cert")) == {"ca.crt"}
    assert set(broker) == {"tls.crt", "tls.key", "ca.crt"}
    assert core.read_namespaced_secret("goqueue-broker-tls", ns).type == "kubernetes.io/tls"
    for name in ("goqueue-cluster-ca", "goqueue-cluster-ca-cert", "goqueue-broker-tls"):
        owners = core.read_namespaced_secret(name, ns).metadata.owner_references
        assert [(o.kind, o.name, o.controller) for o in owners] == [("GoQueueCluster", "goqueue", True)]
    leaf = x509.load_pem_x509_certificate(broker["tls.crt"])
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca["ca.crt"]))
    names = read_certificate(broker["tls.crt"]).dns_names
    assert f"*.goqueue-headless.{ns}.svc.cluster.local" in names
    assert f"goqueue.{ns}.svc" in names
    assert "localhost" in names
    assert cluster["status"]["tls"]["notAfter"] == f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
    assert cluster["status"]["tls"]["issuer"] == "SelfSigned"
    assert condition(cluster, "TLSReady")["reason"] == "CertificatesValid"
    return ca, broker


def check_pod_template(sts: JSON) -> None:
    pod_spec = sts["spec"]["template"]["spec"]
    (broker_container,) = pod_spec["containers"]
    env = {e["name"]: e for e in broker_container["env"]}
    assert env["GOQUEUE_TLS_CERTFILE"]["value"] == "/var/run/goqueue/tls/tls.crt"
    assert env["GOQUEUE_TLS_CLIENTAUTH"]["value"] == "requested"
    assert {"name": "tls", "secret": {"secretName": "goqueue-broker-tls", "defaultMode": 0o440}} in pod_spec["volumes"]
    assert broker_container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_self_signed_ca_and_broker_certificate_are_secrets_the_pods_mount(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    core = k8s.CoreV1Api(kube_api)
    apply(kubectl, ns, cluster_manifest(replicas=1, tls={"enabled": True, "clientAuth": "requested"}))
    cluster = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "TLSReady", 90)
    ca, broker = check_secrets(core, ns, cluster)
    sts = get(kubectl, ns, "statefulset", "goqueue")
    assert sts is not None
    check_pod_template(sts)
    wait_events(kubectl, ns, "goqueue", "ClusterCACreated", "TrustBundleUpdated", "BrokerCertificateIssued")

    # the operator's own calls (leader, roll gates) go over https, verified
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 180)
    wait_until(lambda: ((get(kubectl, ns, "goqueuecluster", "goqueue") or {}).get("status") or {}).get(
        "leader") == 0, 60, interval_s=1, message="the metadata leader, asked by the operator over https")

    # a broker certificate that is not the cluster CA's (here: someone else's) is re-issued, the CA kept. After the
    # broker started: the process-kubelet writes a Secret volume once, where a kubelet would follow the Secret.
    now = datetime.now(UTC)
    stranger = issue_ca("not ours", now=now, validity=timedelta(days=30))
    foreign = issue_leaf(stranger, "b", dns_names=["localhost"], ip_addresses=[], now=now, validity=timedelta(days=1))
    core.patch_namespaced_secret("goqueue-broker-tls", ns, {"data": {
        "tls.crt": base64.b64encode(foreign.cert_pem).decode(), "tls.key": base64.b64encode(foreign.key_pem).decode()}})
    def reissued_secret() -> dict[str, bytes] | None:
        now_served = secret(core, ns, "goqueue-broker-tls")
        return now_served if now_served["tls.crt"] not in (foreign.cert_pem, broker["tls.crt"]) else None

    reissued = wait_until(reissued_secret, 30, interval_s=0.5, message="the broker certificate re-issued")
    x509.load_pem_x509_certificate(reissued["tls.crt"]).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca["ca.crt"]))
    assert secret(core, ns, "goqueue-cluster-ca") == ca

    # nothing secret in the pod template, the ConfigMap or the operator's log
    key_lines = [line for line in ca["ca.key"].decode().splitlines() if "PRIVATE KEY" not in line]
    config = json.dumps(get(kubectl, ns, "configmap", "goqueue-config"))
    for text in (json.dumps(sts), config, operator.log_text()):
        assert "PRIVATE KEY" not in text
        assert not any(line in text for line in key_lines)


def test_with_client_certificates_required_the_operator_presents_its_own(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    """clientAuth required refuses every call without a client certificate, a SCRAM login included: the operator
    shows one of its own (CN goqueue-operator, the brokers' administrator, signed by the cluster CA), so it still
    reads the leader and creates topics. (It could do neither with SCRAM alone: the topic stayed NotReady.)"""
    ns = kube_namespace
    core = k8s.CoreV1Api(kube_api)
    apply(kubectl, ns, cluster_manifest(replicas=1, tls={"enabled": True, "clientAuth": "required"}))
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 180)
    wait_until(lambda: ((get(kubectl, ns, "goqueuecluster", "goqueue") or {}).get("status") or {}).get(
        "leader") == 0, 60, interval_s=1, message="the metadata leader, asked by the operator with its certificate")
    apply(kubectl, ns, topic_manifest("mtls-only", partitions=2, replicationFactor=1))
    wait_condition(kubectl, ns, "goqueuetopic", "mtls-only", "Ready", 60)

    pod = get(kubectl, ns, "pod", "goqueue-0") or {}
    tls = BrokerTls(secret(core, ns, "goqueue-cluster-ca-cert")["ca.crt"],
                    f"goqueue-0.goqueue-headless.{ns}.svc.cluster.local")
    with (broker_client(broker_url(pod["status"]["podIP"], 8080, tls=True), 10, tls,
                        operator_credentials(kubectl, ns)) as client,  # the operator's password, no certificate
          pytest.raises(Unauthenticated)):
        client.describe_topic("mtls-only")


def test_cert_manager_mode_without_cert_manager_says_so_then_uses_its_certificate(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    core = k8s.CoreV1Api(kube_api)
    kubectl("delete", "-f", str(CERTIFICATE_CRD), "--ignore-not-found", "--wait=true")
    tls = {"enabled": True, "issuer": "CertManager", "issuerRef": {"name": "cluster-issuer", "kind": "ClusterIssuer"},
           "validityDays": 90, "renewBeforeDays": 10}
    apply(kubectl, ns, cluster_manifest(replicas=1, tls=tls))
    missing = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "TLSReady", 60, status="False")
    assert condition(missing, "TLSReady")["reason"] == "CertManagerNotInstalled"
    assert "install cert-manager" in condition(missing, "TLSReady")["message"]
    wait_events(kubectl, ns, "goqueue", "CertManagerNotInstalled")
    warning = [e for e in json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
               if e["reason"] == "CertManagerNotInstalled"]
    assert warning[0]["type"] == "Warning"

    kubectl("apply", "-f", str(CERTIFICATE_CRD))
    try:
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/certificates.cert-manager.io")
        # the operator caches API discovery for a minute
        certificate = wait_until(lambda: get(kubectl, ns, "certificate", "goqueue-broker-tls"), 120, interval_s=1,
                                 message="the Certificate")
        spec = certificate["spec"]
        assert spec["secretName"] == "goqueue-broker-tls"
        assert f"*.goqueue-headless.{ns}.svc.cluster.local" in spec["dnsNames"]
        assert (spec["duration"], spec["renewBefore"]) == ("2160h", "240h")
        assert spec["issuerRef"] == {"name": "cluster-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"}
        assert certificate["metadata"]["ownerReferences"][0]["name"] == "goqueue"
        # the status is written at the end of the reconcile that created the Certificate
        wait_until(lambda: condition(get(kubectl, ns, "goqueuecluster", "goqueue"), "TLSReady").get("reason")
                   == "CertificatePending", 30, interval_s=0.5, message="TLSReady reason CertificatePending")

        # play cert-manager: issue from "its" CA into the Secret the Certificate names
        now = datetime.now(UTC)
        issuer = issue_ca("cert-manager's CA", now=now, validity=timedelta(days=365))
        leaf = issue_leaf(issuer, "goqueue", dns_names=spec["dnsNames"], ip_addresses=spec["ipAddresses"], now=now,
                          validity=timedelta(days=90))
        core.create_namespaced_secret(ns, {"metadata": {"name": "goqueue-broker-tls"}, "type": "kubernetes.io/tls",
                                           "data": {k: base64.b64encode(v).decode() for k, v in {
                                               "tls.crt": leaf.cert_pem, "tls.key": leaf.key_pem,
                                               "ca.crt": issuer.cert_pem}.items()}})
        ready = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "TLSReady", 30)
        assert ready["status"]["tls"] == {"issuer": "CertManager",
                                          "notAfter": f"{read_bundle(leaf.cert_pem)[0].not_after:%Y-%m-%dT%H:%M:%SZ}"}
        assert get(kubectl, ns, "secret", "goqueue-cluster-ca") is None  # no CA of the operator's in this mode
    finally:
        kubectl("delete", "-f", str(CERTIFICATE_CRD), "--ignore-not-found", "--wait=true")


@pytest.mark.parametrize(("tls", "refusal"), [
    ({"issuer": "CertManager"}, "spec.tls.issuerRef is required when spec.tls.issuer is CertManager"),
    ({"validityDays": 30, "renewBeforeDays": 30}, "spec.tls.renewBeforeDays must be less than spec.tls.validityDays"),
    ({"validityDays": 1700}, "spec.tls.validityDays cannot exceed caValidityDays - caRenewBeforeDays"),
    ({"clientAuth": "optional"}, "Unsupported value"),
    ({"issuer": "CertManager", "issuerRef": {"name": "corp"}, "clientAuth": "required"},
     "spec.tls.clientAuth required needs issuer SelfSigned"),
])
def test_the_api_server_refuses_a_tls_spec_that_cannot_work(kubectl: Kubectl, goqueue_crds: list[str],
                                                            module_namespace: str, tls: JSON, refusal: str) -> None:
    refused = try_apply(kubectl, module_namespace, cluster_manifest(replicas=1, tls={"enabled": True, **tls}))
    assert refused.returncode != 0
    assert refusal in refused.stderr


def pod_tls_listeners(kubectl: Kubectl, ns: str) -> list[str]:
    """Per broker pod: "off", "none" (certificates, every listener plain), "http,grpc" (internal listener plain),
    "internal" (client listeners plain) or "all"."""
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", "app.kubernetes.io/name=goqueue", "-o", "json"))["items"]
    found = []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env") or []}
        if "GOQUEUE_TLS_CERTFILE" not in env:
            found.append("off")
        else:
            found.append(env["GOQUEUE_TLS_LISTENERS"] or "none" if "GOQUEUE_TLS_LISTENERS" in env else "all")
    return found


def test_by_default_brokers_talk_to_each_other_over_mutual_tls_while_clients_use_plain_http(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    """A GoQueueCluster that says nothing about TLS gets the cluster CA and broker certificates, and its brokers'
    internal listener (replica fetches, forwarding) and Raft speak TLS with them; HTTP and gRPC stay plain for
    clients."""
    ns = kube_namespace
    core = k8s.CoreV1Api(kube_api)
    manifest = cluster_manifest()
    assert "tls" not in manifest["spec"]
    apply(kubectl, ns, manifest)
    cluster = wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 240)
    assert (cluster["spec"]["tls"]["enabled"], cluster["spec"]["tls"]["internal"]) == (False, True)  # CRD defaults
    check_secrets(core, ns, cluster)
    assert pod_tls_listeners(kubectl, ns) == ["internal,raft"] * 3

    ca = secret(core, ns, "goqueue-cluster-ca-cert")["ca.crt"]
    pods = [get(kubectl, ns, "pod", f"goqueue-{i}") or {} for i in range(3)]
    for ordinal, pod in enumerate(pods):
        ip = pod["status"]["podIP"]
        context = ssl.create_default_context(cadata=ca.decode())
        for port in (8081, 7000):  # the internal listener and Raft
            with socket.create_connection((ip, port), timeout=10) as raw, context.wrap_socket(
                    raw, server_hostname=f"goqueue-{ordinal}.goqueue-headless.{ns}.svc.cluster.local") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")  # verified against the cluster CA, as that pod's name
        with pytest.raises(httpx.TransportError):  # the internal listener does not speak plain HTTP
            httpx.get(f"http://{ip}:8081/internal/v1/replica/epoch-end", timeout=10)

    credentials = operator_credentials(kubectl, ns)
    with GoQueueClient(f"http://{pods[0]['status']['podIP']}:8080", timeout_s=10, credentials=credentials) as client:
        client.create_topic(TopicCreate(name="internal-tls", partitions=3, replication_factor=3))
        # acks=all on every partition: forwarded to leaders on other brokers, copied by followers' fetches, both
        # over the internal listener's mutual TLS
        for partition in range(3):
            client.produce("internal-tls", [ProduceRecord(value=f"r{partition}")], partition=partition, acks="all")

        def every_copy_in_sync() -> bool:
            details = client.describe_topic("internal-tls").partition_details
            return len(details) == 3 and all(sorted(d.isr) == [0, 1, 2] for d in details)

        wait_until(every_copy_in_sync, 60, interval_s=1, message="every replica in sync")
        assert client.describe_topic("internal-tls").messages == 3


def test_turning_tls_on_rolls_running_brokers_twice_and_they_keep_serving_over_verified_https(
    operator: OperatorProcess, kubectl: Kubectl, kube_api: k8s.ApiClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    core = k8s.CoreV1Api(kube_api)
    apply(kubectl, ns, cluster_manifest(tls={"enabled": False, "internal": False}))  # no certificate at all
    wait_condition(kubectl, ns, "goqueuecluster", "goqueue", "Ready", 240)
    assert pod_tls_listeners(kubectl, ns) == ["off"] * 3
    pods = [get(kubectl, ns, "pod", f"goqueue-{i}") or {} for i in range(3)]
    credentials = operator_credentials(kubectl, ns)  # anonymous access is off: act as the operator's principal
    with GoQueueClient(f"http://{pods[0]['status']['podIP']}:8080", timeout_s=10, credentials=credentials) as client:
        client.create_topic(TopicCreate(name="before-tls", partitions=3, replication_factor=3))
        client.produce("before-tls", [ProduceRecord(value="plain")])

    apply(kubectl, ns, cluster_manifest(tls={"enabled": True}))
    seen: set[str] = set()

    def rolled_twice() -> bool:
        listeners = pod_tls_listeners(kubectl, ns)
        seen.update(listeners)
        cluster = get(kubectl, ns, "goqueuecluster", "goqueue") or {}
        status = cluster.get("status") or {}
        return (listeners == ["all"] * 3 and condition(cluster, "Ready").get("status") == "True"
                and status.get("phase") == "Running" and status.get("leader") is not None)

    wait_until(rolled_twice, 480, interval_s=1, message="every broker restarted into full TLS, Ready")
    assert "http,grpc" in seen, f"no broker went through the certificates-only phase: {seen}"
    wait_events(kubectl, ns, "goqueue", "RolloutComplete", "BrokerCertificateIssued")

    ca = secret(core, ns, "goqueue-cluster-ca-cert")["ca.crt"]
    for ordinal in range(3):
        pod = get(kubectl, ns, "pod", f"goqueue-{ordinal}") or {}
        tls = BrokerTls(ca, f"goqueue-{ordinal}.goqueue-headless.{ns}.svc.cluster.local")
        with broker_client(broker_url(pod["status"]["podIP"], 8080, tls=True), 10, tls, credentials) as client:
            # produce forwards to partition leaders on other brokers: peers verify each other over mutual TLS
            client.produce("before-tls", [ProduceRecord(value=f"tls-{ordinal}", partition=p) for p in range(3)])
            assert client.describe_topic("before-tls").messages == 1 + 3 * (ordinal + 1)
