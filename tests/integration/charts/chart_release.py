"""A charts/goqueue release installed on the harness's control plane, for the chart and chaos integration tests.

`install_release` runs the runbook's `helm install goqueue charts/goqueue -n <fresh namespace> --set …` and waits until
the three brokers are Ready; the namespace (and everything in it) is deleted afterwards and must finish deleting.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import NAMESPACE_DELETE_TIMEOUT_S, KubeletHandle
from goqueue_harness.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "goqueue"
RELEASE = "goqueue"
BROKERS = 3
READY_TIMEOUT_S = 180.0
RUNBOOK_INSTALL = ("--set", "replicaCount=3", "--set", "resources.requests.memory=2Gi",
                   "--set", "resources.limits.memory=4Gi", "--set", "persistence.size=100Gi",
                   "--set", "metrics.enabled=true")
# The one addition for the process-kubelet: its pods share this machine's ports, so each broker binds its pod IP.
LOCAL_NODE = ("--set", "network.bind=PodIP")


def console_script(name: str) -> str:
    beside_python = Path(sys.executable).with_name(name)
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


@dataclass
class Release:
    namespace: str
    helm: Path
    kubectl: Path
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

    def revision_after(self, before: str) -> str | None:
        """The StatefulSet's update revision once it differs from `before` (an upgrade changed the pods), else None."""
        revision: str = self.apps.read_namespaced_stateful_set("goqueue", self.namespace).status.update_revision
        return revision if revision != before else None

    def cli(self, *args: str, tool: str = "goqueue-cli", ordinal: int = 0) -> str:
        proc = subprocess.run([console_script(tool), "--server", self.url(ordinal), *args], capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    def raft_password(self) -> bytes:
        return base64.b64decode(self.core.read_namespaced_secret("goqueue-raft", self.namespace).data["password"])


@contextmanager
def install_release(prefix: str, k8s_binaries: BinDir, kubeconfig: Path, kube_api: k8s.ApiClient,
                    kubelet: KubeletHandle, values: Sequence[str] = (),
                    prepare: Callable[[str], None] = lambda namespace: None, chart: Path = CHART) -> Iterator[Release]:
    """The runbook's `helm install goqueue charts/goqueue -n <namespace> --set …`, in a fresh namespace; `values`
    are more helm arguments, `prepare(namespace)` runs before the install (e.g. creates a Secret it names), and
    `chart` is another copy of the chart (an earlier version, for the upgrade test)."""
    core = k8s.CoreV1Api(kube_api)
    namespace = f"t-{prefix}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"goqueue.dev/test": "true"}}})
    installed = Release(namespace, k8s_binaries.helm, k8s_binaries.kubectl, kubeconfig, core,
                        k8s.AppsV1Api(kube_api), k8s.PolicyV1Api(kube_api), kubelet)
    try:
        wait_until(lambda: any(sa.metadata.name == "default"
                               for sa in core.list_namespaced_service_account(namespace).items),
                   30, message=f"default ServiceAccount in {namespace}")
        prepare(namespace)
        installed.install_output = installed.helm_run("install", RELEASE, str(chart), *RUNBOOK_INSTALL, *LOCAL_NODE,
                                                      *values)
        installed.wait_all_ready()
        yield installed
    finally:
        core.delete_namespace(namespace)
        wait_until(lambda: not any(n.metadata.name == namespace for n in core.list_namespace().items),
                   NAMESPACE_DELETE_TIMEOUT_S, message=f"namespace {namespace} to finish deleting")
