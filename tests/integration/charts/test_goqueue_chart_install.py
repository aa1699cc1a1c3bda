"""charts/goqueue installed with the runbook's command on the harness's real control plane (real API server,
StatefulSet and disruption controllers, the process-kubelet running `goqueue-broker` processes on pod IPs).

One release per module, as an operator would have it: install, the brokers form their Raft quorum and become Ready,
the runbook's and NOTES' first commands work against a broker, an upgrade that changes the settings rolls the brokers
with the same Raft password and keeps the data, and an uninstall keeps the claims.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from goqueue.models import ClusterStatus, TopicInfo
from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import NAMESPACE_DELETE_TIMEOUT_S, KubeletHandle
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "goqueue"
RELEASE = "goqueue"
BROKERS = 3
READY_TIMEOUT_S = 180.0
ROLL_TIMEOUT_S = 180.0  # about 25 s here; PySyncObj caching a restarted peer's old IP makes it 600 s
RUNBOOK_INSTALL = ("--set", "replicaCount=3", "--set", "resources.requests.memory=2Gi",
                   "--set", "resources.limits.memory=4Gi", "--set", "persistence.size=100Gi",
                   "--set", "metrics.enabled=true")
KUBECTL_EXEC = re.compile(r"^\s*kubectl exec -n \S+ (?P<pod>\S+) -- (?P<command>goqueue-(cli|admin) .*)$")


def console_script(name: str) -> str:
    beside_python = Path(sys.executable).with_name(name)
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


@dataclass
class Release:
    namespace: str
    helm: Path
    kubeconfig: Path
    core: k8s.CoreV1Api
    apps: k8s.AppsV1Api
    policy: k8s.PolicyV1Api
    kubelet: KubeletHandle
    install_output: str = ""

    def helm_run(self, *args: str) -> str:
        proc = subprocess.run([str(self.helm), f"--kubeconfig={self.kubeconfig}", *args, "-n", self.namespace],
                              capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    def pods(self) -> list[k8s.V1Pod]:
        selector = f"app.kubernetes.io/name=goqueue,app.kubernetes.io/instance={RELEASE}"
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def pod_ip(self, ordinal: int) -> str:
        ip: str = self.core.read_namespaced_pod(f"goqueue-{ordinal}", self.namespace).status.pod_ip
        return ip

    def url(self, ordinal: int = 0) -> str:
        return f"http://{self.pod_ip(ordinal)}:8080"

    def broker_logs(self) -> str:
        return "\n".join(f"--- goqueue-{i} ---\n{self.kubelet.logs(self.namespace, f'goqueue-{i}', 'broker')[-3000:]}"
                         for i in range(BROKERS))

    def wait_all_ready(self, revision: str | None = None, timeout_s: float = READY_TIMEOUT_S) -> None:
        def ready() -> bool:
            pods = {p.metadata.name: p for p in self.pods()}
            if sorted(pods) != [f"goqueue-{i}" for i in range(BROKERS)]:
                return False
            for pod in pods.values():
                if pod.metadata.deletion_timestamp is not None:
                    return False
                if revision and pod.metadata.labels.get("controller-revision-hash") != revision:
                    return False
                if not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                    return False
            return True

        try:
            wait_until(ready, timeout_s, interval_s=1.0, message=f"{BROKERS} brokers Ready (revision {revision})")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.broker_logs()}") from None

    def cli(self, *args: str, tool: str = "goqueue-cli", ordinal: int = 0) -> str:
        proc = subprocess.run([console_script(tool), "--server", self.url(ordinal), *args], capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    def raft_password(self) -> bytes:
        return base64.b64decode(self.core.read_namespaced_secret("goqueue-raft", self.namespace).data["password"])


@pytest.fixture(scope="module")
def release(k8s_binaries: BinDir, kubeconfig: Path, kube_api: k8s.ApiClient,
            kubelet: KubeletHandle) -> Iterator[Release]:
    """The runbook's `helm install goqueue charts/goqueue -n <namespace> --set …`, in a fresh namespace."""
    core = k8s.CoreV1Api(kube_api)
    namespace = f"t-chart-install-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"goqueue.dev/test": "true"}}})
    installed = Release(namespace, k8s_binaries.helm, kubeconfig, core, k8s.AppsV1Api(kube_api),
                        k8s.PolicyV1Api(kube_api), kubelet)
    try:
        wait_until(lambda: any(sa.metadata.name == "default"
                               for sa in core.list_namespaced_service_account(namespace).items),
                   30, message=f"default ServiceAccount in {namespace}")
        installed.install_output = installed.helm_run("install", RELEASE, str(CHART), *RUNBOOK_INSTALL)
        installed.wait_all_ready()
        yield installed
    finally:
        core.delete_namespace(namespace)
        wait_until(lambda: not any(n.metadata.name == namespace for n in core.list_namespace().items),
                   NAMESPACE_DELETE_TIMEOUT_S, message=f"namespace {namespace} to finish deleting")


def test_three_brokers_become_ready_with_the_runbooks_names(release: Release) -> None:
    sts = release.apps.read_namespaced_stateful_set("goqueue", release.namespace)
    assert sts.status.ready_replicas == BROKERS
    claims = {c.metadata.name: c for c in release.core.list_namespaced_persistent_volume_claim(release.namespace).items}
    assert sorted(claims) == [f"goqueue-data-goqueue-{i}" for i in range(BROKERS)]
    for claim in claims.values():
        assert claim.status.phase == "Bound"
        assert claim.spec.resources.requests["storage"] == "100Gi"
    # The disruption controller agrees: one broker of three may be evicted, not two.
    pdb = wait_until(lambda: _pdb_settled(release), 60, message="PDB status")
    assert pdb.status.expected_pods == BROKERS
    assert pdb.status.disruptions_allowed == 1
    services = {s.metadata.name for s in release.core.list_namespaced_service(release.namespace).items}
    assert services == {"goqueue", "goqueue-headless", "goqueue-metrics"}


def _pdb_settled(release: Release) -> Any:
    pdb = release.policy.read_namespaced_pod_disruption_budget("goqueue", release.namespace)
    return pdb if pdb.status and pdb.status.current_healthy == BROKERS else None


def test_the_runbooks_first_commands_work(release: Release) -> None:
    """The brief's check, as an operator would type it against a broker's pod IP."""
    release.cli("topic", "create", "--name", "my-topic", "--partitions", "8", "--replication-factor", "3")
    status = ClusterStatus.model_validate_json(release.cli("-o", "json", "cluster", "status", tool="goqueue-admin"))
    assert status.mode == "cluster"
    assert status.healthy
    assert status.brokers == BROKERS
    assert status.live_brokers == BROKERS
    assert sorted(m.broker_id for m in status.members) == list(range(BROKERS))
    # Each broker advertises its StatefulSet DNS name, and its id is its pod's ordinal.
    assert {m.host for m in status.members} == {
        f"goqueue-{i}.goqueue-headless.{release.namespace}.svc.cluster.local" for i in range(BROKERS)}
    topic = TopicInfo.model_validate_json(release.cli("-o", "json", "topic", "describe", "my-topic", ordinal=2))
    assert topic.partitions == 8
    assert all(len(p.replicas) == 3 for p in topic.partition_details)


def test_the_commands_notes_prints_work(release: Release) -> None:
    commands = [m for line in release.install_output.splitlines() if (m := KUBECTL_EXEC.match(line))]
    assert {m["command"].split()[1] for m in commands} >= {"cluster", "topic", "produce"}
    for match in commands:
        ordinal = int(match["pod"].rpartition("-")[2])
        tool, *args = match["command"].replace("my-topic", "notes-topic").split()
        release.cli(*args, tool=tool, ordinal=ordinal)
    assert "kubectl port-forward -n " + release.namespace + " svc/goqueue-metrics 9000:9000" in release.install_output


def test_every_broker_serves_metrics_on_the_port_the_metrics_service_targets(release: Release) -> None:
    service = release.core.read_namespaced_service("goqueue-metrics", release.namespace)
    (port,) = service.spec.ports
    assert (port.port, port.target_port) == (9000, "http")
    for i in range(BROKERS):
        pod = release.core.read_namespaced_pod(f"goqueue-{i}", release.namespace)
        http = {p.name: p.container_port for p in pod.spec.containers[0].ports}["http"]
        text = httpx.get(f"http://{pod.status.pod_ip}:{http}/metrics", timeout=10).text
        assert "goqueue_broker_ready 1.0" in text
        assert "goqueue_cluster_brokers_alive" in text


@pytest.mark.timeout(ROLL_TIMEOUT_S + 120)
def test_an_upgrade_rolls_the_brokers_with_the_same_password_and_keeps_the_data(release: Release) -> None:
    password = release.raft_password()
    before = release.apps.read_namespaced_stateful_set("goqueue", release.namespace).status.current_revision
    release.cli("produce", "--topic", "my-topic", "--key", "k", "--value", "before the upgrade")

    release.helm_run("upgrade", RELEASE, str(CHART), "--reuse-values", "--set", "config.retention.maxAge=72h")

    assert release.raft_password() == password  # looked up, never rotated
    config = release.core.read_namespaced_config_map("goqueue-config", release.namespace).data["goqueue.yaml"]
    assert "maxAge: 72h" in config
    revision = wait_until(lambda: _new_revision(release, before), 30, message="a new StatefulSet revision")
    release.wait_all_ready(revision=revision, timeout_s=ROLL_TIMEOUT_S)
    status = ClusterStatus.model_validate_json(release.cli("-o", "json", "cluster", "status", tool="goqueue-admin"))
    assert status.live_brokers == BROKERS
    topic = TopicInfo.model_validate_json(release.cli("-o", "json", "topic", "describe", "my-topic"))
    assert sum(p.high_watermark for p in topic.partition_details) >= 1  # the record produced before the roll
    release.cli("produce", "--topic", "my-topic", "--key", "k", "--value", "after the upgrade")


def _new_revision(release: Release, before: str) -> str | None:
    revision: str = release.apps.read_namespaced_stateful_set("goqueue", release.namespace).status.update_revision
    return revision if revision != before else None


def test_uninstall_keeps_every_brokers_data(release: Release) -> None:
    release.helm_run("uninstall", RELEASE, "--wait", "--timeout", "120s")
    wait_until(lambda: not release.pods(), 120, message="broker pods to stop")
    claims = sorted(c.metadata.name for c in release.core.list_namespaced_persistent_volume_claim(
        release.namespace).items)
    assert claims == [f"goqueue-data-goqueue-{i}" for i in range(BROKERS)]
    history = json.loads(release.helm_run("list", "--all", "-o", "json"))
    assert history == []
