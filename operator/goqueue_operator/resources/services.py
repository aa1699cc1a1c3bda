"""The three Services of a cluster.

- headless `<cluster>-headless`: stable per-broker DNS names for Raft peers; publishes not-ready pods, because
  brokers must find each other before any of them is ready (a quorum forms first). The only Service with the Raft
  and internal (broker-to-broker) ports: brokers reach each other by pod DNS name;
- client `<cluster>` (`goqueue`): HTTP and gRPC for clients, ready brokers only;
- metrics `<cluster>-metrics` (`goqueue-metrics`): port 9000 → the HTTP port's /metrics, as the runbook's
  `kubectl port-forward svc/goqueue-metrics 9000:9000` expects.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import labels, ports
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.views import ClusterView


def _port(name: str, port: int, target: str) -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": target, "protocol": "TCP"}


def build_headless_service(cluster: ClusterView) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(cluster, "headless", {labels.SERVICE_ROLE: "headless"}),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": labels.selector_labels(cluster.name),
            "ports": [_port(ports.HTTP, ports.HTTP_PORT, ports.HTTP), _port(ports.GRPC, ports.GRPC_PORT, ports.GRPC),
                      _port(ports.RAFT, ports.RAFT_PORT, ports.RAFT),
                      _port(ports.INTERNAL, ports.INTERNAL_PORT, ports.INTERNAL)],
        },
    }


def build_client_service(cluster: ClusterView) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(cluster, "client", {labels.SERVICE_ROLE: "client"}),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector_labels(cluster.name),
            "ports": [_port(ports.HTTP, ports.HTTP_PORT, ports.HTTP), _port(ports.GRPC, ports.GRPC_PORT, ports.GRPC)],
        },
    }


def build_metrics_service(cluster: ClusterView) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(cluster, "metrics", {labels.SERVICE_ROLE: "metrics"}),
        "spec": {
            "type": "ClusterIP",
            "selector": labels.selector_labels(cluster.name),
            "ports": [_port(ports.METRICS, ports.METRICS_SERVICE_PORT, ports.HTTP)],
        },
    }
