"""Issuer CertManager: apply the Certificate, then read what cert-manager wrote into `<cluster>-broker-tls`.

The operator never installs cert-manager: without its API (cert-manager.io/v1) TLSReady is False with reason
CertManagerNotInstalled and the fix. cert-manager renews the certificate itself (renewBefore); brokers reload it.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.kube import Kube, KubeError, NamespaceTerminating
from goqueue_operator.pki.certs import CertificateError, read_certificate
from goqueue_operator.pki.material import secret_data
from goqueue_operator.pki.outcome import TLS_CONDITION, TlsOutcome, when
from goqueue_operator.resources.certificate import CERT_MANAGER_API, build_certificate
from goqueue_operator.resources.names import TLS_CA_KEY, TLS_CERT_KEY, child_name
from goqueue_operator.status.conditions import Condition
from goqueue_operator.views import ClusterView


def _why_not_issued(certificate: dict[str, Any] | None) -> tuple[str, bool]:
    """cert-manager's own words, and whether they say it failed (rather than is still working)."""
    for condition in ((certificate or {}).get("status") or {}).get("conditions") or []:
        if condition.get("status") == "False" and condition.get("message"):
            failed = condition.get("reason") == "Failed" or condition.get("type") == "Issuing"
            return f"cert-manager: {condition.get('reason')}: {condition['message']}", failed
    return "cert-manager has not issued it yet", False


async def advance_cert_manager(kube: Kube, cluster: ClusterView) -> TlsOutcome:
    name = child_name(cluster.name, "broker-tls")
    record = {"issuer": "CertManager"}
    if not await kube.serves(CERT_MANAGER_API):
        return TlsOutcome.failed("CertManagerNotInstalled", f"spec.tls.issuer is CertManager but the API server "
                                 f"does not serve {CERT_MANAGER_API} (the Certificate CRD). Fix: install "
                                 "cert-manager, or set spec.tls.issuer: SelfSigned", record)
    try:
        certificate = await kube.apply(build_certificate(cluster))
    except NamespaceTerminating:
        raise  # the namespace is going away with the cluster: nothing failed (handlers/cluster.py)
    except KubeError as exc:
        return TlsOutcome.failed("IssuanceFailed", f"Certificate {name} could not be applied: {exc}", record)
    data = secret_data(await kube.get("Secret", cluster.namespace, name))
    if not data.get(TLS_CERT_KEY):
        why, failed = _why_not_issued(certificate)
        message = f"Secret {name} has no certificate yet: {why}"
        if failed:
            return TlsOutcome.failed("IssuanceFailed", message, record)
        return TlsOutcome(Condition(TLS_CONDITION, False, "CertificatePending", message), record)
    trust = data.get(TLS_CA_KEY) or None
    try:
        leaf = read_certificate(data[TLS_CERT_KEY])
    except CertificateError as exc:
        return TlsOutcome.failed("IssuanceFailed", f"Secret {name} tls.crt: {exc}", record, trust)
    record["notAfter"] = when(leaf.not_after) or ""
    if trust is None:
        return TlsOutcome.failed("NoCABundle", f"Secret {name} has no ca.crt: the operator cannot verify the "
                                 "brokers. Fix: use an issuer that writes ca.crt (a CA issuer)", record)
    return TlsOutcome(Condition(TLS_CONDITION, True, "CertificatesValid",
                                f"broker certificate (cert-manager) valid until {record['notAfter']}"), record, trust)
