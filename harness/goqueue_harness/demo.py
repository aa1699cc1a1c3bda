"""A 3-broker GoQueue StatefulSet applied directly: the local demo until the operator runs it.

Why here: ``make up`` must show GoQueue running under Kubernetes on a machine with
no cluster; until the operator exists, this applies the StatefulSet it will
manage, with the same interface: ``goqueue-broker`` configured by ``GOQUEUE_*``
variables, bound to its pod IP (pods share the machine's port space), data on
the claim mounted at ``/var/lib/goqueue/data``, peers by their StatefulSet DNS
names. The tests in ``tests/harness`` use the same manifests.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from goqueue_harness.kubeapi import JSON, ClientConfig, Conflict, KubeClient, resource_path

DATA_DIR = "/var/lib/goqueue/data"
DEMO_NAMESPACE = "goqueue"
HEADLESS = "goqueue-headless"


def broker_manifests(replicas: int, *, raft: bool, password: str = "local-demo-password") -> tuple[JSON, JSON]:
    """(headless Service, StatefulSet); ``raft`` makes the brokers one Raft cluster."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": HEADLESS}, "spec": {
        "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app.kubernetes.io/name": "goqueue"},
        "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9000}, {"name": "raft", "port": 7000}]}}
    env: list[JSON] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "GOQUEUE_BROKER_HOST", "value": "$(POD_IP)"},
        {"name": "GOQUEUE_BROKER_PORT", "value": "8080"},
        {"name": "GOQUEUE_STORAGE_DATADIR", "value": DATA_DIR},
        {"name": "GOQUEUE_STORAGE_WALDIR", "value": f"{DATA_DIR}/wal"},
    ]
    if raft:
        peers = ",".join(f"goqueue-{i}.{HEADLESS}:7000" for i in range(replicas))
        env += [{"name": "GOQUEUE_CLUSTER_PEERS", "value": peers},
                {"name": "GOQUEUE_CLUSTER_PASSWORD", "value": password}]
    statefulset = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "goqueue"}, "spec": {
        # A Raft quorum needs several brokers before any is ready: OrderedReady would deadlock.
        "podManagementPolicy": "Parallel" if raft else "OrderedReady",
        "serviceName": HEADLESS, "replicas": replicas,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "goqueue"}},
        "template": {"metadata": {"labels": {"app.kubernetes.io/name": "goqueue"}}, "spec": {
            "terminationGracePeriodSeconds": 10,
            "containers": [{
                "name": "broker", "image": "goqueue:dev", "command": ["goqueue-broker"], "env": env,
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 9000},
                          {"name": "raft", "containerPort": 7000}],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5,
                                  "failureThreshold": 6},
                "volumeMounts": [{"name": "data", "mountPath": DATA_DIR}],
            }]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
    }}
    return service, statefulset


async def _apply(client: KubeClient, namespace: str, replicas: int, timeout_s: float) -> list[str]:
    with contextlib.suppress(Conflict):
        await client.create(resource_path("v1", "namespaces"), {"metadata": {"name": namespace}})
    service, statefulset = broker_manifests(replicas, raft=True)
    for api, plural, body in (("v1", "services", service), ("apps/v1", "statefulsets", statefulset)):
        try:
            await client.create(resource_path(api, plural, namespace), body)
        except Conflict:
            await client.patch(resource_path(api, plural, namespace, body["metadata"]["name"]), body)
    deadline = time.monotonic() + timeout_s
    while True:
        pods = [await client.get(resource_path("v1", "pods", namespace, f"goqueue-{i}")) for i in range(replicas)]
        ready = [p for p in pods if p and any(c["type"] == "Ready" and c["status"] == "True"
                                              for c in p.get("status", {}).get("conditions", []))]
        if len(ready) == replicas:
            return [str(p["status"]["podIP"]) for p in ready]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ready)}/{replicas} brokers Ready after {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


def run_demo(kubeconfig: Path, *, namespace: str = DEMO_NAMESPACE, replicas: int = 3,
             timeout_s: float = 180.0) -> list[str]:
    """Apply the broker StatefulSet and wait until every broker is Ready; return their pod IPs."""

    async def main() -> list[str]:
        async with KubeClient(ClientConfig.from_kubeconfig(kubeconfig)) as client:
            return await _apply(client, namespace, replicas, timeout_s)

    return asyncio.run(main())
