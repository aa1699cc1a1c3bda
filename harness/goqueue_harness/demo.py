"""``make up``'s GoQueue: the operator chart, then the sample GoQueueCluster it runs, on the local control plane.

Why here: ``make up`` must show GoQueue as a user runs it on Kubernetes (helm install the operator, apply a
GoQueueCluster) on a machine with no cluster. Every step is idempotent (server-side apply, ``helm upgrade
--install``, ``kubectl apply``), so running it twice changes nothing.

Two local differences, both because pods here share the machine's network namespace: the sample cluster gets
``spec.network.bind: PodIP``, and the operator (like the chart's default) binds its metrics on its pod IP. The
operator serves namespace ``goqueue`` only, so test sessions reusing this control plane (pytest's
``control_plane`` fixture does) run their own operators in their namespaces without two operators fighting over one
resource.

``broker_manifests`` is a plain broker StatefulSet kept for the harness's own tests (no operator involved).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from goqueue_harness.binaries import BinDir, Versions
from goqueue_harness.images import IMAGE_ID_ANNOTATION
from goqueue_harness.kubeapi import JSON
from goqueue_harness.kubelet.logs import container_log

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "goqueue-operator"
SAMPLE = REPO / "operator" / "deploy" / "samples" / "goqueue.yaml"
OPERATOR_NAMESPACE = "goqueue-system"
RELEASE = "goqueue-operator"
DEMO_NAMESPACE = "goqueue"
FIELD_MANAGER = "goqueue-make-up"
DATA_DIR = "/var/lib/goqueue/data"
HEADLESS = "goqueue-headless"
DEMO_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}


@dataclass(frozen=True)
class DemoCluster:
    """What `make up` brought up, for the hints it prints."""

    namespace: str
    cluster: str
    broker_ips: list[str]
    topics: list[str]
    groups: list[str]


class Tools:
    """The pinned kubectl and helm, bound to the control plane's admin kubeconfig."""

    def __init__(self, bins: BinDir, kubeconfig: Path) -> None:
        self.bins = bins
        self.kubeconfig = kubeconfig

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return _run([str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig}", *args], input_text)

    def helm(self, *args: str) -> str:
        return _run([str(self.bins.helm), f"--kubeconfig={self.kubeconfig}", *args], None)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))


def _run(argv: list[str], input_text: str | None) -> str:
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} {' '.join(argv[2:])} failed ({proc.returncode}):\n"
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def sample_manifests(*, bind_pod_ip: bool = True, broker_pod_annotations: dict[str, str] | None = None) -> list[JSON]:
    """operator/deploy/samples/goqueue.yaml; on the local control plane with the brokers bound to their pod IPs
    (pods share the machine's ports there), on kind as it is. `broker_pod_annotations` go on the broker pods (on
    kind: the id of the image just built, so a rerun rolls brokers still running an earlier build)."""
    docs: list[JSON] = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "GoQueueCluster":
            if bind_pod_ip:
                doc["spec"].setdefault("network", {})["bind"] = "PodIP"
            # Sized for one small node (a 2-core laptop or CI machine): the defaults' CPU requests of three brokers
            # and the operator do not fit beside kind's control plane.
            doc["spec"].setdefault("resources", DEMO_RESOURCES)
            if broker_pod_annotations:
                doc["spec"].setdefault("pod", {}).setdefault("annotations", {}).update(broker_pod_annotations)
    return docs


def install_operator(tools: Tools, namespace: str, pod_annotations: dict[str, str] | None = None) -> None:
    """The CRDs (server-side apply, so a rerun after a CRD change updates them: helm never does), then the chart;
    `pod_annotations` on the operator's pod (on kind: the id of the image just built, see images.py)."""
    crds = CHART / "crds"
    tools.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}", "-f", str(crds))
    names = [d["metadata"]["name"] for f in sorted(crds.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    tools.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    tools.helm("upgrade", "--install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace",
               "--skip-crds", "--set", f"watchNamespaces={{{namespace}}}", *helm_pod_annotations(pod_annotations or {}),
               "--wait", "--timeout", "180s")


def helm_pod_annotations(annotations: dict[str, str]) -> list[str]:
    """`--set-string podAnnotations.<key>=<value>` for each (dots in a key escaped, as helm's --set wants)."""
    args: list[str] = []
    for key, value in annotations.items():
        escaped = key.replace(".", "\\.")
        args += ["--set-string", f"podAnnotations.{escaped}={value}"]
    return args


def _ready(obj: JSON) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def _operator_log_tail(tools: Tools, kubelet_dir: Path | None) -> str:
    pods = tools.get("pods", "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    if kubelet_dir is None:  # a real kubelet: kubectl logs
        return "\n".join(tools.kubectl("logs", "-n", OPERATOR_NAMESPACE, p["metadata"]["name"], "-c", "operator")
                         [-3000:] for p in pods)
    return "\n".join(container_log(kubelet_dir, OPERATOR_NAMESPACE, p["metadata"]["name"], "operator")[-3000:]
                     for p in pods)


def run_demo(bins: BinDir, kubeconfig: Path, kubelet_dir: Path | None, *, namespace: str = DEMO_NAMESPACE,
             timeout_s: float = 300.0, image_ids: dict[str, str] | None = None) -> DemoCluster:
    """Install the operator, apply the sample, wait until the cluster, its topics and groups are Ready.
    ``kubelet_dir`` is the process-kubelet's (the local control plane), None on kind; ``image_ids`` (kind) the
    `operator` and `broker` images' short ids, annotated on their pods (images.IMAGE_ID_ANNOTATION)."""
    tools = Tools(bins, kubeconfig)
    # The namespace first: the chart puts the operator's Role (and RoleBinding) into every namespace it serves.
    tools.kubectl("apply", "-f", "-", input_text=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    ids = image_ids or {}
    install_operator(tools, namespace, {IMAGE_ID_ANNOTATION: ids["operator"]} if "operator" in ids else None)
    docs = sample_manifests(bind_pod_ip=kubelet_dir is not None,
                            broker_pod_annotations={IMAGE_ID_ANNOTATION: ids["broker"]} if "broker" in ids else None)
    tools.kubectl("apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump_all(docs))
    wanted = [(d["kind"].lower(), d["metadata"]["name"]) for d in docs]
    deadline = time.monotonic() + timeout_s
    while True:
        objects = {(kind, name): tools.get(kind, name, "-n", namespace) for kind, name in wanted}
        waiting = [f"{kind}/{name}" for (kind, name), obj in objects.items() if not _ready(obj)]
        if not waiting:
            break
        if time.monotonic() > deadline:
            statuses = {f"{k}/{n}": (o.get("status") or {}).get("conditions") for (k, n), o in objects.items()}
            raise RuntimeError(f"not Ready after {timeout_s:.0f}s: {', '.join(waiting)}\n"
                               f"{json.dumps(statuses, indent=1)[:3000]}\n"
                               f"operator log:\n{_operator_log_tail(tools, kubelet_dir)}")
        time.sleep(1.0)
    cluster = next(d["metadata"]["name"] for d in docs if d["kind"] == "GoQueueCluster")
    pods = tools.get("pods", "-n", namespace, "-l",
                     f"app.kubernetes.io/name=goqueue,app.kubernetes.io/instance={cluster}")["items"]
    ips = [p["status"]["podIP"] for p in sorted(pods, key=lambda p: p["metadata"]["name"])]
    return DemoCluster(namespace, cluster, ips,
                       [d["metadata"]["name"] for d in docs if d["kind"] == "GoQueueTopic"],
                       [d["metadata"]["name"] for d in docs if d["kind"] == "GoQueueConsumerGroup"])


OPERATOR_USER = "goqueue-operator"  # the operator's own principal on its clusters (docs/SECURITY.md)
PASSWORD_FILE = "operator.password"


def save_operator_password(bins: BinDir, kubeconfig: Path, demo: DemoCluster, state_dir: Path) -> Path:
    """The operator's password, from its Secret into the state directory (mode 0600): the demo's brokers refuse
    anonymous clients, so the CLIs on this machine act as the operator, as they do inside a broker pod."""
    secret = Tools(bins, kubeconfig).get("secret", f"{demo.cluster}-operator-credentials", "-n", demo.namespace)
    path = state_dir / PASSWORD_FILE
    path.touch(mode=0o600)
    path.write_bytes(base64.b64decode(secret["data"]["password"]))
    return path


def next_steps(demo: DemoCluster, bins: BinDir, kubeconfig: Path, state_dir: Path) -> str:
    """What a user types next."""
    topic = demo.topics[0] if demo.topics else "my-topic"
    group = demo.groups[0] if demo.groups else "my-group"
    server = f"http://{demo.broker_ips[0]}:8080"
    brokers = ", ".join(f"{demo.cluster}-{i} {ip}" for i, ip in enumerate(demo.broker_ips))
    return f"""
GoQueue is up in namespace {demo.namespace}: GoQueueCluster {demo.cluster} ({brokers}),
GoQueueTopic {", ".join(demo.topics) or "-"}, GoQueueConsumerGroup {", ".join(demo.groups) or "-"}, all Ready.
goqueue-operator: Helm release {RELEASE} in namespace {OPERATOR_NAMESPACE}, serving namespace {demo.namespace}.

  export KUBECONFIG={kubeconfig}
  alias kubectl={bins.kubectl}   # {Versions.load().kubernetes}, the server's version
  kubectl get goqueue -n {demo.namespace}
  export GOQUEUE_USER={OPERATOR_USER} GOQUEUE_PASSWORD_FILE={state_dir / PASSWORD_FILE}   # anonymous access is off
  goqueue-cli --server {server} produce --topic {topic} --value hello
  goqueue-cli --server {server} consume --topic {topic} --group {group} --from-beginning --max 1 --ack
  goqueue-admin --server {server} cluster status

Pods are local processes: reach brokers by pod IP (kubectl exec, logs and port-forward need a kubelet API this
node does not serve); their logs are under {state_dir}/kubelet/logs/. Stop everything: make down
"""


def next_steps_kind(demo: DemoCluster, bins: BinDir, kubeconfig: Path, kind_cluster: str) -> str:
    """What a user types next on kind: the runbook's own commands (kubectl exec, logs, port-forward)."""
    topic = demo.topics[0] if demo.topics else "my-topic"
    group = demo.groups[0] if demo.groups else "my-group"
    ns, pod = demo.namespace, f"{demo.cluster}-0"
    return f"""
GoQueue is up on kind cluster {kind_cluster} in namespace {ns}: GoQueueCluster {demo.cluster} (3 brokers),
GoQueueTopic {", ".join(demo.topics) or "-"}, GoQueueConsumerGroup {", ".join(demo.groups) or "-"}, all Ready.
goqueue-operator: Helm release {RELEASE} in namespace {OPERATOR_NAMESPACE}, serving namespace {ns}.

  export KUBECONFIG={kubeconfig}
  alias kubectl={bins.kubectl}   # {Versions.load().kubernetes}, the server's version
  kubectl get goqueue -n {ns}
  kubectl exec -n {ns} {pod} -- goqueue-cli produce --topic {topic} --value hello
  kubectl exec -n {ns} {pod} -- goqueue-cli consume --topic {topic} --group {group} --from-beginning --max 1 --ack
  kubectl exec -n {ns} {pod} -- goqueue-admin cluster status
  kubectl logs -n {ns} {pod}
  kubectl port-forward -n {ns} svc/{demo.cluster} 8080:8080   # then: goqueue-cli --server http://localhost:8080 …

Stop everything: make down
"""


def broker_manifests(replicas: int, *, raft: bool, password: str = "local-demo-password") -> tuple[JSON, JSON]:
    """(headless Service, StatefulSet) of plain brokers; ``raft`` makes them one Raft cluster."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": HEADLESS}, "spec": {
        "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app.kubernetes.io/name": "goqueue"},
        "ports": [{"name": "http", "port": 8080}, {"name": "grpc", "port": 9000}, {"name": "raft", "port": 7000}]}}
    env: list[JSON] = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "GOQUEUE_BROKER_HOST", "value": "$(POD_IP)"},
        {"name": "GOQUEUE_BROKER_PORT", "value": "8080"},
        {"name": "GOQUEUE_STORAGE_DATADIR", "value": DATA_DIR},
        {"name": "GOQUEUE_STORAGE_WALDIR", "value": f"{DATA_DIR}/wal"},
        {"name": "GOQUEUE_SECURITY_ALLOWANONYMOUS", "value": "true"},  # a demo without users (docs/SECURITY.md)
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
