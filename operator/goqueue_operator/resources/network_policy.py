"""NetworkPolicy `<cluster>`: who may reach the brokers (docs/SECURITY.md → Network policy).

Ingress only, from `spec.networkPolicy` (`enabled: false` keeps the object with one rule admitting everything, so
switching it off needs no delete):
- Raft (7000) and internal (8081, broker-to-broker HTTP): the cluster's broker pods only;
- HTTP (8080) and gRPC (9000): `clientNamespaces` and the cluster's own namespace — any source when none are listed;
  the HTTP port also from goqueue-operator pods in any namespace (its admin calls: restart checks, drains);
- HTTP, for /metrics: `metricsNamespaces`.

Enforced by the network plugin (Calico, Cilium, …); one without NetworkPolicy support ignores it, and the broker
credential still guards the internal port.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import labels, ports
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.views import ClusterView

NAMESPACE_NAME = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
OPERATOR_PODS = {labels.NAME: labels.MANAGER}  # the goqueue-operator chart's pods


def _ports(*numbers: int) -> list[dict[str, Any]]:
    return [{"port": number, "protocol": "TCP"} for number in numbers]


def _namespaces(names: list[str]) -> list[dict[str, Any]]:
    return [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME: name}}} for name in names]


def build_network_policy(cluster: ClusterView) -> dict[str, Any]:
    spec = cluster.spec.network_policy
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": child_metadata(cluster, "network-policy"),
        "spec": {
            "podSelector": {"matchLabels": labels.selector_labels(cluster.name)},
            "policyTypes": ["Ingress"],
            "ingress": _ingress(cluster) if spec.enabled else [{}],
        },
    }


def _ingress(cluster: ClusterView) -> list[dict[str, Any]]:
    spec = cluster.spec.network_policy
    clients: dict[str, Any] = {"ports": _ports(ports.HTTP_PORT, ports.GRPC_PORT)}
    ingress: list[dict[str, Any]] = [
        {"from": [{"podSelector": {"matchLabels": labels.selector_labels(cluster.name)}}],
         "ports": _ports(ports.RAFT_PORT, ports.INTERNAL_PORT)},
        clients,
    ]
    if spec.client_namespaces:
        clients["from"] = _namespaces(sorted({cluster.namespace, *spec.client_namespaces}))
        ingress.append({"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": OPERATOR_PODS}}],
                        "ports": _ports(ports.HTTP_PORT)})
    if spec.metrics_namespaces:
        ingress.append({"from": _namespaces(spec.metrics_namespaces), "ports": _ports(ports.HTTP_PORT)})
    return ingress
