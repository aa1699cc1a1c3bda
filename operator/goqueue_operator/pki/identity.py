"""The operator's own client certificate, for brokers that require one (spec.tls.clientAuth: required).

With `required`, a broker refuses every connection to HTTP and gRPC that shows no client certificate — the
operator's SCRAM login included — so the operator presents one: CN `goqueue-operator` (its principal, the brokers'
configured administrator: users/principal.py), signed by the cluster CA that signs every client certificate the
brokers accept (issuer SelfSigned; the CRD refuses `required` with cert-manager). Issued in memory, never stored: a
restarted operator issues another. Kept per cluster while the signing CA is the same and it is not near expiry,
so the operator's pooled clients (keyed by how they verify and identify) are reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from goqueue_operator.kube import Kube
from goqueue_operator.observed import PodFacts
from goqueue_operator.pki.certs import KeyPair, read_certificate
from goqueue_operator.pki.material import read_material
from goqueue_operator.resources.names import child_name
from goqueue_operator.users.client_cert import issue_client_certificate
from goqueue_operator.users.principal import OPERATOR_USER
from goqueue_operator.views import ClusterView

VALIDITY = timedelta(days=7)
RENEW_BEFORE = timedelta(days=1)

_issued: dict[tuple[str, str], tuple[bytes, KeyPair, datetime]] = {}  # (ns, cluster) → (signing CA, pair, notAfter)


def needs_identity(cluster: ClusterView, pods: Iterable[PodFacts]) -> bool:
    """The spec asks brokers to require client certificates, or a broker still running does (`required` being turned
    off: until the roll replaces it, the operator's calls to it need the certificate)."""
    tls = cluster.spec.tls
    if tls.issuer != "SelfSigned":
        return False
    return (tls.enabled and tls.client_auth == "required") or any(p.requires_client_certificate for p in pods)


async def operator_identity(kube: Kube, cluster: ClusterView, pods: Iterable[PodFacts],
                            now: datetime) -> tuple[bytes, bytes] | None:
    """(certificate, key) to present to this cluster's brokers; None when they require none or no CA exists yet."""
    if not needs_identity(cluster, pods):
        return None
    ns = cluster.namespace
    material = read_material(await kube.get("Secret", ns, child_name(cluster.name, "cluster-ca")),
                             await kube.get("Secret", ns, child_name(cluster.name, "cluster-ca-cert")), None)
    if material.signing is None:
        return None
    key = (ns, cluster.name)
    held = _issued.get(key)
    if held is None or held[0] != material.signing.cert_pem or held[2] - now <= RENEW_BEFORE:
        pair = issue_client_certificate(material.signing, OPERATOR_USER, now=now, validity=VALIDITY)
        held = (material.signing.cert_pem, pair, read_certificate(pair.cert_pem).not_after)
        _issued[key] = held
    return held[1].cert_pem, held[1].key_pem
