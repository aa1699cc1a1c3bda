"""cert-manager's Certificate `<cluster>-broker-tls` (spec.tls.issuer: CertManager).

cert-manager writes the Secret `<cluster>-broker-tls` (tls.crt, tls.key, ca.crt): the layout the SelfSigned
issuer writes too, so the broker pods mount the same Secret either way. Same names, usages and lifetimes as the
operator's own certificates (pki/sans.py, spec.tls).
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.pki.sans import LOOPBACK_ADDRESSES, broker_common_name, broker_dns_names
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import child_name
from goqueue_operator.views import ClusterView

CERT_MANAGER_API = "cert-manager.io/v1"


def build_certificate(cluster: ClusterView) -> dict[str, Any]:
    tls = cluster.spec.tls
    assert tls.issuer_ref is not None, "the CRD requires spec.tls.issuerRef with issuer CertManager"
    return {
        "apiVersion": CERT_MANAGER_API,
        "kind": "Certificate",
        "metadata": child_metadata(cluster, "broker-tls"),
        "spec": {
            "secretName": child_name(cluster.name, "broker-tls"),
            "secretTemplate": {"labels": child_metadata(cluster, "broker-tls")["labels"]},
            "commonName": broker_common_name(cluster),
            "dnsNames": list(broker_dns_names(cluster)),
            "ipAddresses": list(LOOPBACK_ADDRESSES),
            "duration": f"{tls.validity_days * 24}h",
            "renewBefore": f"{tls.renew_before_days * 24}h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "client auth", "digital signature"],
            "issuerRef": {"name": tls.issuer_ref.name, "kind": tls.issuer_ref.kind, "group": tls.issuer_ref.group},
        },
    }
