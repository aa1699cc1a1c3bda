"""Every Kubernetes object name the operator uses, from one place.

The runbook's names hold for a GoQueueCluster named `goqueue` in namespace `goqueue`: StatefulSet `goqueue`, pods
`goqueue-0..2`, ConfigMap `goqueue-config`, Services `goqueue` (clients), `goqueue-headless` (peer DNS) and
`goqueue-metrics` (port 9000, `kubectl port-forward svc/goqueue-metrics 9000:9000`), claims
`goqueue-data-goqueue-0..2`.
"""

from __future__ import annotations

from typing import Literal

Role = Literal[
    "statefulset", "client", "headless", "metrics", "config", "pdb", "raft-secret", "service-monitor",
    "prometheus-rule", "network-policy", "cluster-ca", "cluster-ca-cert", "broker-tls", "operator-credentials",
]

# Secrets of a cluster holding credentials: no other object (a GoQueueUser's Secret) may take such a name.
SECRET_SUFFIXES = ("-raft", "-operator-credentials", "-cluster-ca", "-cluster-ca-cert", "-broker-tls")

DATA_CLAIM_TEMPLATE = "goqueue-data"  # the claim template's name: claims are goqueue-data-<cluster>-<ordinal>
BROKER_CONTAINER = "broker"
RAFT_PASSWORD_KEY = "password"
CONFIG_FILE_KEY = "goqueue.yaml"
TLS_VOLUME = "tls"
TLS_CERT_KEY, TLS_KEY_KEY, TLS_CA_KEY = "tls.crt", "tls.key", "ca.crt"  # cert-manager's layout

_SUFFIXES: dict[str, str] = {
    "statefulset": "",
    "client": "",
    "headless": "-headless",
    "metrics": "-metrics",
    "config": "-config",
    "pdb": "",
    "raft-secret": "-raft",
    "service-monitor": "",
    "prometheus-rule": "",
    "network-policy": "",
    "cluster-ca": "-cluster-ca",            # the CA's key and certificate: only the operator reads it
    "cluster-ca-cert": "-cluster-ca-cert",  # the trust bundle alone, for clients to mount
    "broker-tls": "-broker-tls",            # the brokers' certificate (and cert-manager's Certificate)
    "operator-credentials": "-operator-credentials",
}


def child_name(cluster_name: str, role: Role) -> str:
    """The name of a cluster's child object (kinds differ where names coincide)."""
    return cluster_name + _SUFFIXES[role]


def pod_name(cluster_name: str, ordinal: int) -> str:
    return f"{child_name(cluster_name, 'statefulset')}-{ordinal}"


def ordinal_of(pod: str) -> int | None:
    """`goqueue-2` → 2; None when the name has no ordinal."""
    head, _, tail = pod.rpartition("-")
    return int(tail) if head and tail.isdigit() else None


def pod_dns_name(cluster_name: str, namespace: str, ordinal: int, cluster_domain: str) -> str:
    """The stable DNS name of a broker pod under the headless Service."""
    return (f"{pod_name(cluster_name, ordinal)}.{child_name(cluster_name, 'headless')}.{namespace}"
            f".svc.{cluster_domain}")
