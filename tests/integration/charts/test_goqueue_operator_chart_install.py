"""charts/goqueue-operator installed with `helm install` on the harness's control plane: the operator runs as a pod
under its own ServiceAccount (the process-kubelet's in-cluster kubeconfig), serves only this module's namespace, and
brings up the GoQueueCluster its NOTES print (3 brokers, `spec.network.bind: PodIP`); records go through; its log
holds no traceback; `helm uninstall` stops the operator and leaves the brokers running.

Coexisting with the operator tests in one session: cluster-scoped names carry the release name (`gqo-<hex>`), and
the operator watches this namespace only. The CRDs come from the chart's crds/ folder, which helm creates when absent
and skips when present (never updated or deleted), and the operator applies its bundled copy at start (crds.manage,
as its ServiceAccount); all copies are byte-identical to crds/ (a unit test), so whether helm, the operator or the
operator tests' `goqueue_crds` fixture comes first, the definitions are the same, and uninstalling never removes
CRDs other tests use. A cluster-wide operator running at the same time (the operator
tests' session operator, peering as `goqueue-operator`) would reconcile this namespace too: for this module it is
frozen the way `kopf freeze` does it (a higher-priority peer in its ClusterKopfPeering, removed afterwards, expiring
by itself), and the Event check below fails if any other operator touched the cluster anyway.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from chart_release import console_script
from kubernetes import client as k8s

from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import NAMESPACE_DELETE_TIMEOUT_S, Kubectl, KubeletHandle
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "goqueue-operator"
CRDS = ["goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io", "goqueueconsumergroups.goqueue.io",
        "goqueueusers.goqueue.io", "goqueuerebalances.goqueue.io"]
BROKERS = 3
READY_TIMEOUT_S = 240.0
HEREDOC = re.compile(r"<<'YAML'\n(?P<body>.*?)\nYAML\n", re.S)  # the terminator at column 0, as a shell needs
KUBECTL_EXEC = re.compile(r"^\s*kubectl exec -n (?P<ns>\S+) (?P<pod>\S+) -- (?P<command>goqueue-cli .*)$")
PROBLEMS = re.compile(r"Traceback|Forbidden|HTTP 403|\"status\": 403")
SESSION_PEERING = "clusterkopfpeering/goqueue-operator"  # operator/deploy/10-kopf-peering.yaml
FREEZE_PRIORITY = 10**12  # above any random peer priority (below 2**31)
FREEZE_LIFETIME_S = 900


@dataclass
class Installed:
    namespace: str
    release: str
    helm: Path
    kubeconfig: Path
    kubectl: Kubectl
    core: k8s.CoreV1Api
    kubelet: KubeletHandle
    notes: str = ""
    operator_pod: str = ""

    @property
    def fullname(self) -> str:
        return f"{self.release}-goqueue-operator"

    def helm_run(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run([str(self.helm), f"--kubeconfig={self.kubeconfig}", *args, "-n", self.namespace],
                              capture_output=True, text=True, timeout=240, check=False)
        assert proc.returncode == 0 or not check, f"helm {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    def operator_pods(self) -> list[k8s.V1Pod]:
        # component=operator: the `helm test` Pod (component=test) shares name and instance, and stays after it ran
        selector = (f"app.kubernetes.io/name=goqueue-operator,app.kubernetes.io/instance={self.release},"
                    "app.kubernetes.io/component=operator")
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def broker_pods(self) -> dict[str, k8s.V1Pod]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/name=goqueue").items
        return {p.metadata.name: p for p in pods}

    def operator_log(self) -> str:
        return self.kubelet.logs(self.namespace, self.operator_pod, "operator")

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", kind, name, "-n", self.namespace, "-o", "json"))
        return found


def is_ready(obj: Any) -> bool:
    conditions = obj.status.conditions if hasattr(obj, "status") else (obj.get("status") or {}).get("conditions")
    for c in conditions or []:
        kind, status = (c.type, c.status) if hasattr(c, "type") else (c["type"], c["status"])
        if kind == "Ready":
            return bool(status == "True")
    return False


def freeze_session_operators(kubectl: Kubectl, identity: str) -> bool:
    """Pause cluster-wide operators peering as `goqueue-operator`, as `kopf freeze` does; False if none can exist."""
    if not kubectl("get", SESSION_PEERING, "--ignore-not-found", check=False).strip():
        return False
    peer = {"priority": FREEZE_PRIORITY, "lifetime": FREEZE_LIFETIME_S, "lastseen": datetime.now(UTC).isoformat()}
    kubectl("patch", SESSION_PEERING, "--type=merge", "-p", json.dumps({"status": {identity: peer}}))
    return True


def thaw_session_operators(kubectl: Kubectl, identity: str) -> None:
    kubectl("patch", SESSION_PEERING, "--type=merge", "-p", json.dumps({"status": {identity: None}}), check=False)


@pytest.fixture(scope="module")
def installed(k8s_binaries: BinDir, kubeconfig: Path, kubectl: Kubectl, kube_api: k8s.ApiClient,
              kubelet: KubeletHandle) -> Iterator[Installed]:
    core = k8s.CoreV1Api(kube_api)
    suffix = secrets.token_hex(3)
    namespace = f"t-goqueue-operator-chart-{suffix}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"goqueue.dev/test": "true"}}})
    release = Installed(namespace, f"gqo-{suffix}", k8s_binaries.helm, kubeconfig, kubectl, core, kubelet)
    frozen = freeze_session_operators(kubectl, f"goqueue-operator-chart-test-{suffix}")
    try:
        wait_until(lambda: any(sa.metadata.name == "default"
                               for sa in core.list_namespaced_service_account(namespace).items),
                   30, message=f"default ServiceAccount in {namespace}")
        release.notes = release.helm_run("install", release.release, str(CHART),
                                         "--set", f"watchNamespaces={{{namespace}}}")
        yield release
    finally:
        release.helm_run("uninstall", release.release, "--wait", "--timeout", "120s", check=False)
        # Without the operator nothing removes kopf's finalizer (docs/OPERATOR.md, "Uninstalling").
        for kind in ("goqueueusers", "goqueueconsumergroups", "goqueuetopics", "goqueueclusters"):
            for name in kubectl("get", kind, "-n", namespace, "-o", "name").split():
                kubectl("patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
        core.delete_namespace(namespace)
        try:
            wait_until(lambda: not any(n.metadata.name == namespace for n in core.list_namespace().items),
                       NAMESPACE_DELETE_TIMEOUT_S, message=f"namespace {namespace} to finish deleting")
        finally:
            if frozen:
                thaw_session_operators(kubectl, f"goqueue-operator-chart-test-{suffix}")


def test_the_operator_pod_becomes_ready_as_its_service_account(installed: Installed) -> None:
    def ready_pod() -> k8s.V1Pod | None:
        pods = [p for p in installed.operator_pods() if is_ready(p)]
        return pods[0] if len(pods) == 1 else None

    pod = wait_until(ready_pod, 120, message="the operator pod Ready")
    installed.operator_pod = pod.metadata.name
    assert pod.spec.service_account_name == installed.fullname
    for crd in CRDS:  # created by the chart or already there: served either way
        installed.kubectl("get", f"crd/{crd}")
    # The process-kubelet wrote the pod's kubeconfig into its kube-api-access volume: the ServiceAccount's token.
    (volume,) = [v.name for v in pod.spec.volumes if v.name.startswith("kube-api-access-")]
    kubeconfig = installed.kubelet.directory / "pods" / pod.metadata.uid / "volumes" / volume / "kubeconfig"
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]
    assert user == {"name": f"system:serviceaccount:{installed.namespace}:{installed.fullname}",
                    "user": {"tokenFile": "token"}}
    log = installed.operator_log()
    assert "Activity 'login_via_client' succeeded" in log
    started = next(json.loads(line) for line in log.splitlines() if '"operator.started"' in line)
    # It applied its CRDs as its ServiceAccount (the chart's RBAC), or found them newer: a decision for each.
    decisions = [json.loads(line) for line in log.splitlines() if '"crd.applied"' in line or '"crd.skipped"' in line]
    assert sorted(d["crd"] for d in decisions) == sorted(CRDS)
    assert started["namespaces"] == [installed.namespace]  # this namespace only: no fight with other operators
    # /metrics and /healthz on the pod IP (every pod shares the machine's ports here).
    metrics = httpx.get(f"http://{pod.status.pod_ip}:8081/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "goqueue_operator_reconciles_total" in metrics.text


def test_helm_test_finds_the_operator_healthy(installed: Installed) -> None:
    assert installed.operator_pod, "the operator pod is not Ready (previous test)"
    output = installed.helm_run("test", installed.release, "--timeout", "120s")  # fails unless the Pod Succeeded
    assert "Succeeded" in output, output
    log = installed.kubelet.logs(installed.namespace, f"{installed.fullname}-test", "healthz")
    assert f"helm test: the operator answers /healthz and /metrics at http://{installed.fullname}-metrics:8081" in log


def test_the_goqueue_cluster_from_the_notes_becomes_ready_with_three_brokers(installed: Installed) -> None:
    assert installed.operator_pod, "the operator pod is not Ready (previous test)"
    match = HEREDOC.search(installed.notes)
    assert match, f"NOTES print no manifest to apply:\n{installed.notes}"
    assert f"kubectl apply -n {installed.namespace} -f - <<'YAML'" in installed.notes
    docs = [d for d in yaml.safe_load_all(match["body"]) if d]
    assert [d["kind"] for d in docs] == ["GoQueueCluster", "GoQueueTopic", "GoQueueConsumerGroup"]
    cluster = docs[0]
    assert cluster["spec"]["replicas"] == BROKERS
    # The local process-kubelet: pods share the machine's ports (as NOTES say); a short grace for the teardown.
    cluster["spec"]["network"] = {"bind": "PodIP"}
    cluster["spec"]["pod"] = {"terminationGracePeriodSeconds": 20}
    installed.kubectl("apply", "-n", installed.namespace, "-f", "-", input_text=yaml.safe_dump_all(docs))

    try:
        wait_until(lambda: is_ready(installed.get("goqueuecluster", "goqueue")), READY_TIMEOUT_S,
                   interval_s=1.0, message="GoQueueCluster goqueue Ready")
    except AssertionError as exc:
        status = installed.get("goqueuecluster", "goqueue").get("status")
        raise AssertionError(f"{exc}\nstatus: {json.dumps(status)[:2000]}\n"
                             f"operator log:\n{installed.operator_log()[-4000:]}") from None
    status = installed.get("goqueuecluster", "goqueue")["status"]
    assert status["readyReplicas"] == BROKERS
    pods = installed.broker_pods()
    assert sorted(pods) == [f"goqueue-{i}" for i in range(BROKERS)]
    assert all(is_ready(p) for p in pods.values())
    wait_until(lambda: is_ready(installed.get("goqueuetopic", "my-topic")), 120, message="GoQueueTopic my-topic Ready")
    # Events name the operator pod: the in-cluster operator did the work, and no other operator did.
    events = json.loads(installed.kubectl("get", "events", "-n", installed.namespace, "-o", "json",
                                          "--field-selector=involvedObject.name=goqueue"))["items"]
    reporters = {e.get("reportingInstance") for e in events if e.get("reportingComponent") == "goqueue-operator"}
    assert reporters == {installed.operator_pod}, (
        f"GoQueueCluster Events reported by {reporters}: another goqueue-operator (cluster-wide, on this control "
        "plane) reconciled this namespace too")


def as_operator(installed: Installed, directory: Path) -> list[str]:
    """The CLI flags of the operator's principal: inside a broker pod the CLIs act as it (GOQUEUE_USER,
    GOQUEUE_PASSWORD_FILE; anonymous access is off on operator-run clusters), so run from here they are given it."""
    secret = installed.get("secret", "goqueue-operator-credentials")
    password_file = directory / "operator-password"
    password_file.write_bytes(base64.b64decode(secret["data"]["password"]))
    return ["--user", "goqueue-operator", "--password-file", str(password_file)]


def test_records_go_through_with_the_notes_commands(installed: Installed, tmp_path: Path) -> None:
    commands = [m for line in installed.notes.splitlines() if (m := KUBECTL_EXEC.match(line))]
    assert [m["command"].split()[1] for m in commands] == ["produce", "consume"]
    credentials = as_operator(installed, tmp_path)
    outputs = []
    for match in commands:
        assert match["ns"] == installed.namespace
        pod = installed.core.read_namespaced_pod(match["pod"], installed.namespace)
        _tool, *args = match["command"].split()
        proc = subprocess.run([console_script("goqueue-cli"), "--server", f"http://{pod.status.pod_ip}:8080",
                               *credentials, "-o", "json", *args], capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, f"{match['command']}: {proc.stdout}{proc.stderr}"
        outputs.append(proc.stdout)
    consumed = [json.loads(line) for line in outputs[1].splitlines() if line.startswith("{")]
    assert [r["value"] for r in consumed] == ["hello"]


def test_the_operator_log_has_no_traceback(installed: Installed) -> None:
    log = installed.operator_log()
    assert log, "no operator log"
    problems = [line[:1000] for line in log.splitlines() if PROBLEMS.search(line)]
    assert problems == [], "the operator logged unexpected errors:\n" + "\n".join(problems[:20])


def test_uninstall_stops_the_operator_and_leaves_the_brokers_running(installed: Installed, tmp_path: Path) -> None:
    credentials = as_operator(installed, tmp_path)  # read while the operator's Secret is certainly there
    before = {name: pod.metadata.uid for name, pod in installed.broker_pods().items()}
    assert len(before) == BROKERS
    installed.helm_run("uninstall", installed.release, "--wait", "--timeout", "120s")
    wait_until(lambda: not installed.operator_pods(), 60, message="the operator pod gone")
    assert json.loads(installed.helm_run("list", "--all", "-o", "json")) == []
    for kind, name in (("clusterrole", installed.fullname), ("clusterrolebinding", installed.fullname)):
        assert installed.kubectl("get", kind, name, "--ignore-not-found") == ""
    for crd in CRDS:  # helm never deletes crds/: other releases and tests keep using them
        installed.kubectl("get", f"crd/{crd}")
    # The operator going away deletes nothing: same brokers, still Ready, still serving.
    after = installed.broker_pods()
    assert {name: pod.metadata.uid for name, pod in after.items()} == before
    assert all(is_ready(p) for p in after.values())
    installed.get("goqueuecluster", "goqueue")
    proc = subprocess.run([console_script("goqueue-cli"), "--server", f"http://{after['goqueue-0'].status.pod_ip}:8080",
                           *credentials, "produce", "--topic", "my-topic", "--value", "after uninstall"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
