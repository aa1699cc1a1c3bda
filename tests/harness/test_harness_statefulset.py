"""StatefulSets: OrderedReady rollout, per-claim data folders that outlive pods, and peer DNS names."""

from __future__ import annotations

import itertools
import json
import sys
from typing import Any

import httpx
import pytest
from harness_pods import JSON, is_ready, read_pod
from kubernetes import client as k8s

from goqueue_harness.pytest_plugin import KubeletHandle
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

# Each pod appends its name to /data/names (its claim's folder), reports what its peers'
# DNS names resolve to, then serves /data over HTTP on its pod IP.
POD_PROGRAM = """
import http.server, json, os, socket, functools
with open('/data/names', 'a') as names:
    names.write(os.environ['POD_NAME'] + '\\n')
ns = os.environ['POD_NAMESPACE']
def resolve(name):
    try:
        return socket.getaddrinfo(name, 8000, type=socket.SOCK_STREAM)[0][4][0]
    except OSError:
        return None
print(json.dumps({'hostname': socket.gethostname(),
                  'web-0.web (short)': resolve('web-0.web'),
                  'web-0 (fqdn)': resolve(f'web-0.web.{ns}.svc.cluster.local'),
                  'self (fqdn)': resolve(f"{os.environ['POD_NAME']}.web.{ns}.svc.cluster.local")}), flush=True)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='/data')
http.server.ThreadingHTTPServer((os.environ['POD_IP'], 8000), handler).serve_forever()
"""


def statefulset(replicas: int) -> tuple[JSON, JSON]:
    service = {"metadata": {"name": "web"}, "spec": {
        "clusterIP": "None", "publishNotReadyAddresses": True, "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 8000}]}}
    fields = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_IP": "status.podIP"}
    sts: dict[str, Any] = {"metadata": {"name": "web"}, "spec": {
        "serviceName": "web", "replicas": replicas, "podManagementPolicy": "OrderedReady",
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "web", "image": "python:3.11", "command": [sys.executable, "-u", "-c", POD_PROGRAM],
                "env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()],
                "ports": [{"name": "http", "containerPort": 8000}],
                "readinessProbe": {"httpGet": {"path": "/names", "port": "http"}, "periodSeconds": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
    }}
    return service, sts


def _ready_pods(core: k8s.CoreV1Api, ns: str, count: int) -> list[JSON] | None:
    pods = [read_pod(core, ns, f"web-{i}") for i in range(count)]
    return [p for p in pods if p is not None] if all(is_ready(p) for p in pods) else None


def _ready_since(pod: JSON) -> str:
    return str(next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready"))


def test_statefulset_rolls_out_in_order_with_lasting_data_and_peer_dns(
    core: k8s.CoreV1Api, apps: k8s.AppsV1Api, kube_namespace: str, kubelet: KubeletHandle
) -> None:
    ns = kube_namespace
    service, sts = statefulset(3)
    core.create_namespaced_service(ns, service)
    apps.create_namespaced_stateful_set(ns, sts)
    pods = wait_until(lambda: _ready_pods(core, ns, 3), 90, message="3 Ready pods")

    # OrderedReady: each ordinal was created only once its predecessor was Ready.
    for before, after in itertools.pairwise(pods):
        assert after["metadata"]["creationTimestamp"] >= _ready_since(before)
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 3
    assert all(ip.startswith("127.") and ip != "127.0.0.1" for ip in ips)

    # Peer DNS through nss_wrapper: short and full names, from the last pod's point of view.
    seen = json.loads(kubelet.logs(ns, "web-2", "web").splitlines()[0])
    assert seen == {"hostname": "web-2", "web-0.web (short)": ips[0], "web-0 (fqdn)": ips[0], "self (fqdn)": ips[2]}

    # The claim's folder outlives the pod: the recreated web-1 appends to the same file.
    old_uid = pods[1]["metadata"]["uid"]
    core.delete_namespaced_pod("web-1", ns)
    wait_until(lambda: (p := read_pod(core, ns, "web-1")) is not None and p["metadata"]["uid"] != old_uid
               and is_ready(p), 60, message="web-1 recreated and Ready")
    new_ip = read_pod(core, ns, "web-1")["status"]["podIP"]  # type: ignore[index]  # Ready: it exists
    names = httpx.get(f"http://{new_ip}:8000/names", timeout=5).text.split()
    assert names == ["web-1", "web-1"]

    # Scaling down and up again keeps the claim (StatefulSets never delete claims by default).
    apps.patch_namespaced_stateful_set_scale("web", ns, {"spec": {"replicas": 2}})
    wait_until(lambda: read_pod(core, ns, "web-2") is None, 60, message="web-2 removed on scale-down")
    assert core.read_namespaced_persistent_volume_claim("data-web-2", ns).status.phase == "Bound"
