"""The process-kubelet runs pods as local processes with the semantics the operator relies on."""

from __future__ import annotations

import ipaddress
import json
import time

import httpx
import pytest
from harness_pods import container_status, pod_manifest, python_container, read_pod, ready_pod
from kubernetes import client as k8s

from goqueue_harness.pytest_plugin import KubeletHandle
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

HTTP_SERVER = (
    "import http.server, os\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8000), http.server.SimpleHTTPRequestHandler)"
    ".serve_forever()\n"
)
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def test_pod_becomes_ready_on_its_own_loopback_address(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    container = python_container(
        "web", HTTP_SERVER, env=[POD_IP_ENV], ports=[{"name": "http", "containerPort": 8000}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1})
    core.create_namespaced_pod(kube_namespace, pod_manifest("web", [container]))
    pod = wait_until(lambda: ready_pod(core, kube_namespace, "web"), 30, message="pod Ready")
    ip = ipaddress.IPv4Address(pod["status"]["podIP"])
    assert ip.is_loopback
    assert str(ip) != "127.0.0.1"
    assert pod["spec"]["nodeName"] == "goqueue-local-node"
    assert httpx.get(f"http://{ip}:8000/", timeout=5).status_code == 200


def test_deleting_a_pod_sends_sigterm_and_removes_it(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(signum, frame):\n"
        "    print('got SIGTERM', flush=True); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('started', flush=True)\n"
        "time.sleep(3600)\n"
    )
    core.create_namespaced_pod(kube_namespace, pod_manifest("graceful", [python_container("main", code)]))
    wait_until(lambda: "started" in kubelet.logs(kube_namespace, "graceful", "main"), 30, message="process started")
    core.delete_namespaced_pod("graceful", kube_namespace)
    wait_until(lambda: read_pod(core, kube_namespace, "graceful") is None, 30, message="pod removed")
    assert "got SIGTERM" in kubelet.logs(kube_namespace, "graceful", "main")


def test_a_process_ignoring_sigterm_is_killed_after_the_grace_period(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('started', flush=True)\n" \
           "time.sleep(3600)\n"
    manifest = pod_manifest("stubborn", [python_container("main", code)], terminationGracePeriodSeconds=2)
    core.create_namespaced_pod(kube_namespace, manifest)
    wait_until(lambda: "started" in kubelet.logs(kube_namespace, "stubborn", "main"), 30, message="process started")
    began = time.monotonic()
    core.delete_namespaced_pod("stubborn", kube_namespace)
    wait_until(lambda: read_pod(core, kube_namespace, "stubborn") is None, 30, message="pod removed")
    assert 2.0 <= time.monotonic() - began < 15.0


def test_a_crashing_container_restarts_and_reports_its_exit_code(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    crasher = pod_manifest("crasher", [python_container("main", "raise SystemExit(3)")])
    core.create_namespaced_pod(kube_namespace, crasher)

    def restarted() -> dict[str, object] | None:
        status = container_status(read_pod(core, kube_namespace, "crasher"), "main")
        return status if status.get("restartCount", 0) >= 2 else None

    status = wait_until(restarted, 60, message="two restarts")
    assert status["lastState"]["terminated"]["exitCode"] == 3  # type: ignore[index]
    pod = read_pod(core, kube_namespace, "crasher")
    assert pod is not None
    assert pod["status"]["phase"] == "Running"


def test_a_failing_liveness_probe_restarts_the_container(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    container = python_container(
        "main", "import time\ntime.sleep(3600)\n",
        livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 2})
    core.create_namespaced_pod(kube_namespace, pod_manifest("unhealthy", [container],
                                                            terminationGracePeriodSeconds=1))
    status = wait_until(
        lambda: (s := container_status(read_pod(core, kube_namespace, "unhealthy"), "main"))
        .get("restartCount", 0) >= 1 and s, 60, message="liveness restart")
    assert status["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM, as a runtime reports it


def test_environment_is_resolved_like_a_kubelet_does(
    core: k8s.CoreV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "cfg"},
                                                       "data": {"level": "debug", "mode": "fast"}})
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}})
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        POD_IP_ENV,
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "URL", "value": "http://$(POD_IP):8080/$(POD_NAME) $$(KEPT)"},
        {"name": "DATA", "value": "/var/lib/goqueue/data/wal"},
    ]
    code = "import json, os, socket\nprint(json.dumps({**os.environ, 'gethostname': socket.gethostname()}))\n"
    container = python_container(
        "main", code, env=env, envFrom=[{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        volumeMounts=[{"name": "scratch", "mountPath": "/var/lib/goqueue/data"}])
    core.create_namespaced_pod(kube_namespace, pod_manifest(
        "envy", [container], restartPolicy="Never", volumes=[{"name": "scratch", "emptyDir": {}}]))
    wait_until(lambda: (p := read_pod(core, kube_namespace, "envy")) and p["status"].get("phase") == "Succeeded",
               30, message="pod Succeeded")
    seen = json.loads(kubelet.logs(kube_namespace, "envy", "main"))
    pod_ip = read_pod(core, kube_namespace, "envy")["status"]["podIP"]  # type: ignore[index]
    assert seen["POD_NAME"] == "envy"
    assert seen["POD_NAMESPACE"] == kube_namespace
    assert seen["NODE"] == "goqueue-local-node"
    assert seen["POD_IP"] == pod_ip
    assert seen["LEVEL"] == "debug"
    assert seen["PASSWORD"] == "s3cret"
    assert seen["CFG_level"] == "debug"
    assert seen["CFG_mode"] == "fast"
    assert seen["URL"] == f"http://{pod_ip}:8080/envy $(KEPT)"
    assert seen["DATA"].endswith("/volumes/scratch/wal")  # the mount path, rewritten to the host folder
    assert seen["gethostname"] == "envy"
