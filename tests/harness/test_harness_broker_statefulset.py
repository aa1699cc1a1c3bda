"""GoQueue brokers as a 3-replica StatefulSet on the process-kubelet, served to goqueue-cli.

Until the operator exists this applies the StatefulSet directly (the manifests
of ``goqueue_harness.demo``, which ``make up`` uses too), with the interface the
operator will use: ``goqueue-broker`` configured by ``GOQUEUE_*`` variables,
bound to its pod IP (pods share the machine's port space, so each broker must
bind ``status.podIP``, not 0.0.0.0), with data on the claim mounted at
``/var/lib/goqueue/data``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness_pods import JSON, is_ready, read_pod
from kubernetes import client as k8s

from goqueue_harness.demo import broker_manifests
from goqueue_harness.pytest_plugin import KubeletHandle
from goqueue_harness.waiting import WaitTimeout, wait_until

pytestmark = pytest.mark.integration


def broker_statefulset(replicas: int, *, raft: bool = False) -> tuple[JSON, JSON]:
    """Standalone brokers, or (``raft``) one Raft cluster whose peers are the pods' DNS names."""
    return broker_manifests(replicas, raft=raft, password="harness-test-password")


def goqueue_cli(*args: str) -> str:
    cli = shutil.which("goqueue-cli", path=str(Path(sys.executable).parent)) or shutil.which("goqueue-cli")
    assert cli is not None, "goqueue-cli is not installed in this environment (pip install -e .)"
    proc = subprocess.run([cli, *args], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"goqueue-cli {' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout


def _all_ready(core: k8s.CoreV1Api, ns: str, count: int) -> list[JSON] | None:
    pods = [read_pod(core, ns, f"goqueue-{i}") for i in range(count)]
    return [p for p in pods if p is not None] if all(is_ready(p) for p in pods) else None


def _wait_for_brokers(core: k8s.CoreV1Api, ns: str, count: int, kubelet: KubeletHandle) -> list[JSON]:
    try:
        return wait_until(lambda: _all_ready(core, ns, count), 120, message=f"{count} Ready brokers")
    except WaitTimeout as exc:
        tails = {f"goqueue-{i}": kubelet.logs(ns, f"goqueue-{i}", "broker")[-1500:] for i in range(count)}
        raise WaitTimeout(f"{exc}\nbroker log tails: {tails}") from exc


def test_three_brokers_come_up_ready_and_serve_goqueue_cli(
    core: k8s.CoreV1Api, apps: k8s.AppsV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    ns = kube_namespace
    service, sts = broker_statefulset(3)
    core.create_namespaced_service(ns, service)
    apps.create_namespaced_stateful_set(ns, sts)
    pods = _wait_for_brokers(core, ns, 3, kubelet)
    for pod in pods:
        server = f"http://{pod['status']['podIP']}:8080"
        assert "NAME" in goqueue_cli("--server", server, "topic", "list")

    # Deleting a pod restarts its broker on the same data: a topic created before survives.
    first = f"http://{pods[0]['status']['podIP']}:8080"
    goqueue_cli("--server", first, "topic", "create", "--name", "orders")
    old_uid = pods[0]["metadata"]["uid"]
    core.delete_namespaced_pod("goqueue-0", ns)
    reborn = wait_until(lambda: (p := read_pod(core, ns, "goqueue-0")) is not None
                        and p["metadata"]["uid"] != old_uid and is_ready(p) and p, 90, message="goqueue-0 back")
    assert "orders" in goqueue_cli("--server", f"http://{reborn['status']['podIP']}:8080", "topic", "list")
    claim = core.read_namespaced_persistent_volume_claim("data-goqueue-0", ns)
    folder = Path(core.read_persistent_volume(claim.spec.volume_name).spec.host_path.path)
    assert any(folder.iterdir()), f"the broker wrote nothing to its claim's folder {folder}"
    assert "broker.ready" in kubelet.logs(ns, "goqueue-0", "broker")


def test_three_brokers_form_one_raft_cluster_through_their_dns_names(
    core: k8s.CoreV1Api, apps: k8s.AppsV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    ns = kube_namespace
    service, sts = broker_statefulset(3, raft=True)
    core.create_namespaced_service(ns, service)
    apps.create_namespaced_stateful_set(ns, sts)
    pods = _wait_for_brokers(core, ns, 3, kubelet)
    servers = [f"http://{p['status']['podIP']}:8080" for p in pods]
    goqueue_cli("--server", servers[1], "topic", "create", "--name", "orders", "--partitions", "3",
                "--replication-factor", "3")
    assert all("orders" in goqueue_cli("--server", s, "topic", "list") for s in servers)
