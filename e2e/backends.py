"""Where the end-to-end scenarios run: "a cluster" behind one small interface, with two implementations.

* `LocalBackend` — the harness's control plane (real kube-apiserver and kube-controller-manager, the
  process-kubelet running pods as local processes), in a state directory of its own: the integration tiers run a
  cluster-wide operator on the shared control plane, and two operators reconciling one cluster would fight.
  Pods share the machine's ports, so GoQueueClusters bind their pod IP (`spec.network.bind: PodIP`); the test
  process reaches a broker at its pod IP (ClusterIPs are not routable here, and Service names resolve only inside
  pods, through their nss_wrapper hosts files); container logs are the kubelet's files.
* `KindBackend` — a one-node kind cluster (goqueue_harness.kind: the public kindest/node where a registry answers,
  else a node image built here from Debian packages and Go modules; a Docker daemon started when none runs):
  `docker build` of Dockerfile.broker and Dockerfile.operator, `kind load docker-image`, charts installed with
  helm; brokers reached with `kubectl port-forward`, logs followed with `kubectl logs -f` into files laid out like
  the local kubelet's. Operator-run clusters claim the harness's expandable StorageClass
  (goqueue_harness.kind_storage). Where Docker cannot run, `kind_unavailable()` says why and the kind variants fail.

Scenarios see only `Backend`: kubectl, helm, the operator install, the plain chart's values, a broker URL for a pod,
the image of client pods, the pod logs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from goqueue_harness.binaries import BinDir
from goqueue_harness.controlplane import ControlPlane
from goqueue_harness.demo import helm_pod_annotations
from goqueue_harness.docker import DockerUnavailable, ensure_docker
from goqueue_harness.images import IMAGE_ID_ANNOTATION, build_broker_and_operator
from goqueue_harness.kind import KindCluster
from goqueue_harness.kind_storage import CLASS_NAME as EXPANDABLE_CLASS
from goqueue_harness.kubelet.daemon import kubelet_dir, kubelet_running, start_kubelet, stop_kubelet
from goqueue_harness.pytest_plugin import Kubectl

REPO = Path(__file__).resolve().parents[1]
OPERATOR_CHART = REPO / "charts" / "goqueue-operator"
PLAIN_CHART = REPO / "charts" / "goqueue"
OPERATOR_NAMESPACE = "goqueue-system"
OPERATOR_RELEASE = "goqueue-operator"
BROKER_PORT = 8080
# Versions the scenarios run; kind needs an image per tag (the rolling upgrade moves from the first to the second).
VERSIONS = ("0.1.0", "0.1.1")
HELM_TIMEOUT_S = 300
# The chart's defaults are 10 s resync/drift and 5 s retry; the scenarios wait on every step of a roll or resize.
OPERATOR_TIMING = ("--set", "settings.clusterResyncSeconds=2", "--set", "settings.driftIntervalSeconds=2",
                   "--set", "settings.retryDelaySeconds=1", "--set", "settings.finalizerTimeoutSeconds=60")
# Small requests: three operator-managed brokers, three plain-chart brokers and the operator share one node.
BROKER_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
PLAIN_CHART_RESOURCES = ("--set", "resources.requests.cpu=50m", "--set", "resources.requests.memory=128Mi",
                         "--set", "resources.limits.memory=1Gi", "--set", "persistence.size=1Gi")


@dataclass(frozen=True)
class LogSource:
    """One container log file and whose it is ("operator" or "broker"; other pods are not checked)."""

    role: str
    path: Path
    label: str


class Backend(ABC):
    """A running cluster the scenarios drive with kubectl and helm."""

    name: str
    kubectl: Kubectl
    helm_binary: Path
    workdir: Path

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Bring the cluster up (or reuse it); return when kubectl works."""

    @abstractmethod
    def stop(self) -> None:
        """Release what `start` created."""

    # -- what differs ------------------------------------------------------------------------------------------
    @abstractmethod
    def cluster_spec(self) -> dict[str, Any]:
        """GoQueueCluster spec fields this backend needs (merged under each scenario's spec)."""

    @abstractmethod
    def operator_values(self) -> list[str]:
        """helm --set arguments for charts/goqueue-operator on this backend."""

    @abstractmethod
    def plain_chart_values(self) -> list[str]:
        """helm --set arguments for charts/goqueue on this backend."""

    @property
    @abstractmethod
    def client_image(self) -> str:
        """The image of client pods (goqueue-cli inside)."""

    @abstractmethod
    def broker_url(self, namespace: str, pod: str) -> str:
        """An HTTP URL of the broker in `pod` that this test process can reach."""

    @abstractmethod
    def pod_endpoint(self, namespace: str, pod: str, port: int) -> tuple[str, int]:
        """(host, port) where this test process reaches `port` of `pod` (the Raft or internal port, for the
        security scenarios: they connect as an outsider on the cluster network would)."""

    @abstractmethod
    def log_sources(self) -> list[LogSource]:
        """Every operator and broker container log file so far (current and earlier incarnations)."""

    @abstractmethod
    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """The current log of a container (also once it has terminated)."""

    # -- shared --------------------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.kubectl.kubeconfig

    def helm(self, *args: str, namespace: str, timeout_s: float = HELM_TIMEOUT_S) -> str:
        proc = subprocess.run([str(self.helm_binary), f"--kubeconfig={self.kubeconfig}", "-n", namespace, *args],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        assert proc.returncode == 0, f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    def install_operator(self) -> None:
        """The operator as a user installs it: `helm install goqueue-operator charts/goqueue-operator` (its CRDs
        come with it), with this backend's values and short reconcile intervals (scenarios wait less). On a
        cluster kept from an earlier run the CRDs are applied first, as a user upgrading does: helm never updates
        them, and scenarios would run against the earlier schema."""
        crds = OPERATOR_CHART / "crds"
        if self.kubectl("get", "crd", "goqueueclusters.goqueue.io", "--ignore-not-found", "-o", "name").strip():
            self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=goqueue-e2e", "-f", str(crds))
        self.helm("upgrade", "--install", OPERATOR_RELEASE, str(OPERATOR_CHART), "--create-namespace", "--wait",
                  f"--timeout={HELM_TIMEOUT_S - 30}s", *OPERATOR_TIMING, *self.operator_values(),
                  namespace=OPERATOR_NAMESPACE)

    def install_plain_chart(self, namespace: str, release: str = "goqueue") -> str:
        """`helm install goqueue charts/goqueue` (no operator) with this backend's values; returns the NOTES."""
        return self.helm("install", release, str(PLAIN_CHART), "--wait", f"--timeout={HELM_TIMEOUT_S - 60}s",
                         *self.plain_chart_values(), namespace=namespace)

    def ready_broker_urls(self, namespace: str, selector: str = "app.kubernetes.io/name=goqueue") -> list[str]:
        """URLs of the broker pods that are Ready now and not being deleted, lowest ordinal first."""
        pods = json.loads(self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
        ready = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp") and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))]
        return [self.broker_url(namespace, name) for name in sorted(ready)]


# ---------------------------------------------------------------------------------------------------------------
# local: the harness's control plane


def _role(container: str) -> str | None:
    return {"operator": "operator", "broker": "broker"}.get(container)


def kubelet_layout_sources(logs_dir: Path) -> list[LogSource]:
    """`<logs>/<ns>_<pod>_<uid>/<container>/<restartCount>.log` (the process-kubelet's layout, which the kind
    backend's log collector copies): operator and broker containers only."""
    found = []
    for path in sorted(logs_dir.glob("*/*/*.log")):
        role = _role(path.parent.name)
        if role is not None:
            found.append(LogSource(role, path, f"{path.parent.parent.name.rsplit('_', 1)[0]}/{path.parent.name}"
                                                f" #{path.stem}"))
    return found


class LocalBackend(Backend):
    name = "local"

    def __init__(self, bins: BinDir, state_dir: Path, workdir: Path) -> None:
        self.bins = bins
        self.control_plane = ControlPlane(state_dir)
        self.kubectl = Kubectl(bins.kubectl, self.control_plane.kubeconfig)
        self.helm_binary = bins.helm
        self.workdir = workdir
        self._owned = False

    def start(self) -> None:
        self._owned = not self.control_plane.is_running()
        self.control_plane.start(bins=self.bins)
        if not kubelet_running(self.control_plane):
            start_kubelet(self.control_plane)

    def stop(self) -> None:
        if self._owned:
            stop_kubelet(self.control_plane)
            self.control_plane.stop()

    def cluster_spec(self) -> dict[str, Any]:
        # All pods share this machine's ports: each broker binds its own pod IP.
        return {"network": {"bind": "PodIP"}, "resources": BROKER_RESOURCES}

    def operator_values(self) -> list[str]:
        return ["--set", "metrics.bind=PodIP"]  # the operator pod shares the machine's ports too

    def plain_chart_values(self) -> list[str]:
        # All pods share this machine's ports: each broker binds its own pod IP.
        return [*PLAIN_CHART_RESOURCES, "--set", "network.bind=PodIP"]

    @property
    def client_image(self) -> str:
        return "goqueue-e2e/goqueue:0.1.0"  # ignored by the process-kubelet: the command runs from its PATH

    def broker_url(self, namespace: str, pod: str) -> str:
        host, port = self.pod_endpoint(namespace, pod, BROKER_PORT)
        return f"http://{host}:{port}"

    def pod_endpoint(self, namespace: str, pod: str, port: int) -> tuple[str, int]:
        ip = self.kubectl("get", "pod", pod, "-n", namespace, "-o", "jsonpath={.status.podIP}").strip()
        assert ip, f"{namespace}/{pod} has no pod IP"
        return ip, port

    def log_sources(self) -> list[LogSource]:
        return kubelet_layout_sources(kubelet_dir(self.control_plane) / "logs")

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        from goqueue_harness.kubelet.logs import container_log

        return container_log(kubelet_dir(self.control_plane), namespace, pod, container)


# ---------------------------------------------------------------------------------------------------------------
# kind


def kind_unavailable() -> str | None:
    """Why the kind backend cannot run here, or None: no Docker daemon answers and none can be started."""
    try:
        ensure_docker()
    except DockerUnavailable as exc:
        return str(exc)
    return None


class PortForward:
    """`kubectl port-forward pod/<pod> :<remote port>` (8080 unless told), restarted when it dies or the pod was
    replaced (a new UID)."""

    FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)")

    def __init__(self, kubectl: Kubectl, namespace: str, pod: str, remote_port: int = BROKER_PORT) -> None:
        self.kubectl, self.namespace, self.pod, self.remote_port = kubectl, namespace, pod, remote_port
        self.process: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None
        self.uid = ""
        self.port = 0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port()}"

    def local_port(self) -> int:
        uid = self.kubectl("get", "pod", self.pod, "-n", self.namespace, "-o", "jsonpath={.metadata.uid}").strip()
        assert uid, f"{self.namespace}/{self.pod} does not exist"
        if self.process is None or self.process.poll() is not None or uid != self.uid:
            self.close()
            self._open(uid)
        return self.port

    def _open(self, uid: str) -> None:
        self.process = subprocess.Popen(
            [str(self.kubectl.binary), f"--kubeconfig={self.kubectl.kubeconfig}", "port-forward", "-n",
             self.namespace, f"pod/{self.pod}", f":{self.remote_port}", "--address=127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until kubectl says where it listens, or exits
        found = self.FORWARDING.search(line)
        assert found, f"kubectl port-forward {self.namespace}/{self.pod}: {line}"
        self.port, self.uid = int(found.group(1)), uid
        # Keep reading so kubectl never blocks on a full pipe ("Handling connection for …" lines).
        self.reader = threading.Thread(target=self.process.stdout.read, daemon=True)
        self.reader.start()

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            if self.reader is not None:
                self.reader.join(timeout=10)  # reads to EOF once kubectl is gone
            if self.process.stdout is not None:
                self.process.stdout.close()
        self.process = None
        self.reader = None


class LogCollector(threading.Thread):
    """Follows every operator and broker container with `kubectl logs -f` into files laid out like the local
    kubelet's (`<ns>_<pod>_<uid>/<container>/<restartCount>.log`), so a pod replaced mid-scenario keeps its log."""

    SELECTOR = "app.kubernetes.io/name in (goqueue, goqueue-operator)"

    def __init__(self, kubectl: Kubectl, directory: Path) -> None:
        super().__init__(daemon=True)
        self.kubectl, self.directory = kubectl, directory
        self.stopping = threading.Event()
        self.followers: dict[Path, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}

    def run(self) -> None:
        while not self.stopping.wait(2):
            proc = subprocess.run([str(self.kubectl.binary), f"--kubeconfig={self.kubectl.kubeconfig}", "get", "pods",
                                   "-A", "-l", self.SELECTOR, "-o", "json"], capture_output=True, text=True,
                                  timeout=60, check=False)
            if proc.returncode == 0:
                for pod in json.loads(proc.stdout)["items"]:
                    self._follow(pod)

    def _follow(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        for status in pod.get("status", {}).get("containerStatuses", []):
            if "running" not in status.get("state", {}) and "terminated" not in status.get("state", {}):
                continue
            path = (self.directory / f"{meta['namespace']}_{meta['name']}_{meta['uid']}" / status["name"]
                    / f"{status['restartCount']}.log")
            if path in self.followers:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            sink = path.open("ab")
            follower = subprocess.Popen(
                [str(self.kubectl.binary), f"--kubeconfig={self.kubectl.kubeconfig}", "logs", "-f", "-n",
                 meta["namespace"], meta["name"], "-c", status["name"]], stdout=sink, stderr=subprocess.STDOUT,
                start_new_session=True)
            self.followers[path] = (follower, sink)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        for follower, sink in self.followers.values():
            if follower.poll() is None:
                os.killpg(follower.pid, signal.SIGTERM)
                follower.wait(timeout=10)
            sink.close()


class KindBackend(Backend):
    """A one-node kind cluster (goqueue_harness.kind: node image, Docker daemon, expandable StorageClass)."""

    name = "kind"
    IMAGE_REPOSITORY = "goqueue-e2e/goqueue"
    OPERATOR_IMAGE_REPOSITORY = "goqueue-e2e/goqueue-operator"

    def __init__(self, bins: BinDir, workdir: Path, cluster_name: str = "goqueue-e2e") -> None:
        self.workdir = workdir
        self.cluster = KindCluster(os.environ.get("GOQUEUE_E2E_KIND_CLUSTER", cluster_name))
        self.kubectl = Kubectl(bins.kubectl, self.cluster.kubeconfig)
        self.helm_binary = bins.helm
        self._created = False
        self._forwards: dict[tuple[str, str, int], PortForward] = {}
        self._forwards_lock = threading.Lock()
        self._collector: LogCollector | None = None
        self._operator_image_id = ""

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        reason = kind_unavailable()
        assert reason is None, reason
        self._created = self.cluster.create()
        self._build_and_load_images()
        self._collector = LogCollector(self.kubectl, self.workdir / "logs")
        self._collector.start()

    def _build_and_load_images(self) -> None:
        broker_tags = [f"{self.IMAGE_REPOSITORY}:{v}" for v in VERSIONS]
        operator_tag = f"{self.OPERATOR_IMAGE_REPOSITORY}:{VERSIONS[0]}"
        _, operator = build_broker_and_operator(broker_tags, [operator_tag], version=VERSIONS[0])
        self.cluster.load(*broker_tags, operator_tag)
        # The tag stays while the build changes: on a kept cluster only a new pod template replaces an operator
        # pod still running an earlier build (it did once, and every scenario saw the old operator's brokers).
        # Broker pods are created anew in each run's namespaces.
        self._operator_image_id = operator.short_id

    def stop(self) -> None:
        for forward in self._forwards.values():
            forward.close()
        if self._collector is not None:
            self._collector.stop()
        if self._created and os.environ.get("GOQUEUE_E2E_KEEP_KIND") != "1":
            self.cluster.delete()

    # -- what differs ------------------------------------------------------------------------------------------
    def cluster_spec(self) -> dict[str, Any]:
        # The operator's image repository points at the loaded images (operator_values); never pull them.
        # Bind all addresses: kubectl port-forward reaches a broker on the pod's 127.0.0.1, never on its pod IP.
        # Operator-run clusters claim the harness's expandable class (kind's local-path cannot grow volumes); the
        # plain chart keeps kind's default class, so both are exercised.
        return {"imagePullPolicy": "IfNotPresent", "resources": BROKER_RESOURCES, "network": {"bind": "All"},
                "storage": {"storageClassName": EXPANDABLE_CLASS}}

    def operator_values(self) -> list[str]:
        return ["--set", f"image.repository={self.OPERATOR_IMAGE_REPOSITORY}", "--set", f"image.tag={VERSIONS[0]}",
                "--set", "image.pullPolicy=IfNotPresent", "--set", f"brokerImageRepository={self.IMAGE_REPOSITORY}",
                "--set", "metrics.bind=All", *helm_pod_annotations({IMAGE_ID_ANNOTATION: self._operator_image_id})]

    def plain_chart_values(self) -> list[str]:
        return ["--set", f"image.repository={self.IMAGE_REPOSITORY}", "--set", f"image.tag={VERSIONS[0]}",
                "--set", "image.pullPolicy=IfNotPresent", *PLAIN_CHART_RESOURCES]

    @property
    def client_image(self) -> str:
        return f"{self.IMAGE_REPOSITORY}:{VERSIONS[0]}"

    def broker_url(self, namespace: str, pod: str) -> str:
        return f"http://127.0.0.1:{self.pod_endpoint(namespace, pod, BROKER_PORT)[1]}"

    def pod_endpoint(self, namespace: str, pod: str, port: int) -> tuple[str, int]:
        with self._forwards_lock:  # producers' threads and the scenario ask at once
            forward = self._forwards.setdefault((namespace, pod, port),
                                                PortForward(self.kubectl, namespace, pod, port))
            return "127.0.0.1", forward.local_port()

    def log_sources(self) -> list[LogSource]:
        return kubelet_layout_sources(self.workdir / "logs")

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        return self.kubectl("logs", "-n", namespace, pod, "-c", container)

