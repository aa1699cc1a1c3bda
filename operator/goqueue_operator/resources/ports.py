"""The broker's ports and where its files live inside the pod (fixed: the runbook and the image assume them)."""

from __future__ import annotations

from typing import Any

HTTP_PORT = 8080  # HTTP API, /healthz, /readyz, /metrics
GRPC_PORT = 9000  # gRPC API
RAFT_PORT = 7000  # metadata Raft, between brokers only
INTERNAL_PORT = 8081  # broker-to-broker HTTP (replica fetches, forwarding), between brokers only
METRICS_SERVICE_PORT = 9000  # goqueue-metrics Service port (runbook: port-forward svc/goqueue-metrics 9000:9000)

HTTP = "http"
GRPC = "grpc"
RAFT = "raft"
INTERNAL = "internal"
METRICS = "metrics"

DATA_DIR = "/data"  # the claim; the runbook runs `df -h /data`
WAL_DIR = "/data/wal"
CONFIG_DIR = "/etc/goqueue"
CONFIG_FILE = f"{CONFIG_DIR}/goqueue.yaml"
TMP_DIR = "/tmp"  # an emptyDir: the root filesystem is read-only
TLS_DIR = "/var/run/goqueue/tls"  # the broker-tls Secret, where charts/goqueue mounts it too
RAFT_PASSWORD_DIR = "/var/run/goqueue/cluster"  # the Raft Secret (cluster.passwordFile), as charts/goqueue mounts it


def container_ports() -> list[dict[str, Any]]:
    return [
        {"name": HTTP, "containerPort": HTTP_PORT, "protocol": "TCP"},
        {"name": GRPC, "containerPort": GRPC_PORT, "protocol": "TCP"},
        {"name": RAFT, "containerPort": RAFT_PORT, "protocol": "TCP"},
        {"name": INTERNAL, "containerPort": INTERNAL_PORT, "protocol": "TCP"},
    ]
