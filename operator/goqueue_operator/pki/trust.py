"""How the operator verifies a broker it calls: the CA bundle to trust and the name to expect (brokers.py).

The bundle is the one clients get: `<cluster>-cluster-ca-cert` (SelfSigned) or the `ca.crt` cert-manager wrote
into `<cluster>-broker-tls` (CertManager). Read fresh on every reconcile, so a renewed CA is trusted at once.
"""

from __future__ import annotations

from goqueue_operator.brokers import BrokerTls
from goqueue_operator.kube import Kube
from goqueue_operator.observed import PodFacts
from goqueue_operator.pki.material import secret_data
from goqueue_operator.resources.names import TLS_CA_KEY, pod_dns_name
from goqueue_operator.resources.tls import ca_bundle_secret
from goqueue_operator.views import ClusterView


async def read_trust(kube: Kube, cluster: ClusterView) -> bytes | None:
    """The CA bundle of the cluster's issuer; None when nothing is issued. Read whether spec.tls is on or not:
    while TLS is being turned off, brokers not restarted yet still serve it."""
    secret = await kube.get("Secret", cluster.namespace, ca_bundle_secret(cluster))
    return secret_data(secret).get(TLS_CA_KEY) or None


def broker_tls(cluster: ClusterView, pod: PodFacts, trust: bytes | None,
               identity: tuple[bytes, bytes] | None = None) -> BrokerTls | None:
    """How to verify this broker, or None for a broker serving plaintext (TLS off, or a pod started before it
    was turned on: a roll is under way)."""
    if not pod.tls or trust is None:
        return None
    return BrokerTls(trust, pod_dns_name(cluster.name, cluster.namespace, pod.ordinal, cluster.cluster_domain),
                     identity)
