"""The cluster CA's Secrets as material (PEM bytes) and back, and the facts the planner reads from it. Pure.

Layout (the broker Secret is what cert-manager writes, so both issuers fill the same mount):

- `<cluster>-cluster-ca` (the operator only): `ca.key`, `ca.crt` (the signing CA), `next-ca.key`, `next-ca.crt`
  (its successor during a renewal), `previous-ca.crt` (retired, trusted until it expires);
- `<cluster>-cluster-ca-cert` (clients, the operator): `ca.crt`, every CA certificate to trust;
- `<cluster>-broker-tls` (the brokers, a read-only volume): `tls.crt`, `tls.key`, `ca.crt` (the same bundle).

The annotation `goqueue.io/trust-published-at` on `<cluster>-cluster-ca` records when the bundles last changed,
so the planner can tell whether a successor CA has been trusted long enough to sign.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from goqueue_operator.pki.certs import CertFacts, CertificateError, KeyPair, bundle, key_matches, read_bundle
from goqueue_operator.pki.plan import PkiObserved
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import TLS_CA_KEY, TLS_CERT_KEY, TLS_KEY_KEY, Role, child_name
from goqueue_operator.views import ClusterView

JSON = dict[str, Any]
TRUST_PUBLISHED_ANNOTATION = "goqueue.io/trust-published-at"
CA_KEY = "ca.key"
NEXT_KEY, NEXT_CERT, PREVIOUS_CERT = "next-ca.key", "next-ca.crt", "previous-ca.crt"



def secret_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    if secret is None:
        return {}
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


@dataclass(frozen=True)
class PkiMaterial:
    signing: KeyPair | None = None
    successor: KeyPair | None = None
    previous_cert: bytes | None = None
    trust_published_at: datetime | None = None
    leaf: KeyPair | None = None
    broker_bundle: bytes = b""
    client_bundle: bytes = b""

    @property
    def trust_bundle(self) -> bytes:
        """Newest first: the signing CA, its successor, the retired one."""
        return bundle(*(p for p in (self.signing.cert_pem if self.signing else b"",
                                    self.successor.cert_pem if self.successor else b"",
                                    self.previous_cert or b"")))

    def published(self, now: datetime) -> PkiMaterial:
        return replace(self, broker_bundle=self.trust_bundle, client_bundle=self.trust_bundle,
                       trust_published_at=now)


def _pair(data: Mapping[str, bytes], cert_key: str, key_key: str) -> KeyPair | None:
    if cert_key not in data and key_key not in data:
        return None
    return KeyPair(data.get(cert_key, b""), data.get(key_key, b""))


def _published_at(secret: Mapping[str, Any] | None) -> datetime | None:
    raw = ((secret or {}).get("metadata", {}).get("annotations") or {}).get(TRUST_PUBLISHED_ANNOTATION)
    try:
        return datetime.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def read_material(ca: Mapping[str, Any] | None, ca_cert: Mapping[str, Any] | None,
                  broker: Mapping[str, Any] | None) -> PkiMaterial:
    ca_data, broker_data = secret_data(ca), secret_data(broker)
    return PkiMaterial(signing=_pair(ca_data, TLS_CA_KEY, CA_KEY), successor=_pair(ca_data, NEXT_CERT, NEXT_KEY),
                       previous_cert=ca_data.get(PREVIOUS_CERT), trust_published_at=_published_at(ca),
                       leaf=_pair(broker_data, TLS_CERT_KEY, TLS_KEY_KEY),
                       broker_bundle=broker_data.get(TLS_CA_KEY, b""),
                       client_bundle=secret_data(ca_cert).get(TLS_CA_KEY, b""))


def _ca_facts(pair: KeyPair | None, what: str) -> CertFacts | None:
    if pair is None:
        return None
    facts = read_bundle(pair.cert_pem)[0]
    if not facts.is_ca:
        raise CertificateError(f"{what} is not a CA certificate")
    if not key_matches(pair.cert_pem, pair.key_pem):
        raise CertificateError(f"{what}'s key does not belong to its certificate")
    return facts


def _fingerprints(pem: bytes) -> frozenset[str]:
    try:
        return frozenset(c.fingerprint for c in read_bundle(pem))
    except CertificateError:
        return frozenset()  # an unreadable bundle is simply published again


def observe(material: PkiMaterial, cluster_name: str) -> PkiObserved:
    """Facts for the planner. A CA the operator cannot read is a problem it will not paper over by making a new
    one (every client trusting the old one would break): the user deletes the Secret to start again."""
    ca_secret = child_name(cluster_name, "cluster-ca")
    try:
        signing = _ca_facts(material.signing, f"{ca_secret} {TLS_CA_KEY}")
        successor = _ca_facts(material.successor, f"{ca_secret} {NEXT_CERT}")
        previous = read_bundle(material.previous_cert)[0] if material.previous_cert else None
    except CertificateError as exc:
        return PkiObserved(problem=f"{exc}; delete Secret {ca_secret} to make a new cluster CA (clients must "
                           "then trust the new ca.crt)")
    leaf = None
    if material.leaf is not None and key_matches(material.leaf.cert_pem, material.leaf.key_pem):
        leaf = read_bundle(material.leaf.cert_pem)[0]  # a leaf that does not parse or match is re-issued
    return PkiObserved(signing=signing, successor=successor, previous=previous,
                       trust_published_at=material.trust_published_at, leaf=leaf,
                       broker_trust=_fingerprints(material.broker_bundle),
                       client_trust=_fingerprints(material.client_bundle))


def _encoded(data: Mapping[str, bytes | None]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items() if v}


def _secret(cluster: ClusterView, role: Role, data: Mapping[str, bytes | None], secret_type: str = "Opaque",
            annotations: Mapping[str, str] | None = None) -> JSON:
    metadata = child_metadata(cluster, role)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": secret_type, "data": _encoded(data)}


def ca_secret(cluster: ClusterView, material: PkiMaterial) -> JSON:
    signing, successor = material.signing, material.successor
    published = material.trust_published_at
    return _secret(cluster, "cluster-ca", {
        TLS_CA_KEY: signing.cert_pem if signing else None, CA_KEY: signing.key_pem if signing else None,
        NEXT_CERT: successor.cert_pem if successor else None, NEXT_KEY: successor.key_pem if successor else None,
        PREVIOUS_CERT: material.previous_cert,
    }, annotations={TRUST_PUBLISHED_ANNOTATION: published.isoformat()} if published else None)


def ca_cert_secret(cluster: ClusterView, material: PkiMaterial) -> JSON:
    return _secret(cluster, "cluster-ca-cert", {TLS_CA_KEY: material.client_bundle})


def broker_secret(cluster: ClusterView, material: PkiMaterial) -> JSON:
    leaf = material.leaf
    return _secret(cluster, "broker-tls", {TLS_CERT_KEY: leaf.cert_pem if leaf else b"",
                                           TLS_KEY_KEY: leaf.key_pem if leaf else b"",
                                           TLS_CA_KEY: material.broker_bundle}, "kubernetes.io/tls")
