"""Small helpers for the operator's integration tests: manifests, kubectl JSON reads, condition waits."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

import httpx

from goqueue.client.auth import Credentials
from goqueue.security.scram import ClientExchange
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

JSON = dict[str, Any]
API = "goqueue.io/v1alpha1"


def cluster_manifest(name: str = "goqueue", **spec: Any) -> JSON:
    """A GoQueueCluster that runs on the process-kubelet: brokers share the machine's ports, so they bind the pod
    IP (spec.network.bind PodIP); small claims; short grace and restart delays for test speed."""
    base: JSON = {"replicas": 3, "storage": {"size": "1Gi"}, "network": {"bind": "PodIP"},
                  "pod": {"terminationGracePeriodSeconds": 20}, "rollout": {"minDelaySeconds": 1}}
    for key, value in spec.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return {"apiVersion": API, "kind": "GoQueueCluster", "metadata": {"name": name}, "spec": base}


def topic_manifest(name: str, cluster: str = "goqueue", **spec: Any) -> JSON:
    return {"apiVersion": API, "kind": "GoQueueTopic", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": cluster}, **spec}}


def group_manifest(name: str, cluster: str = "goqueue", **spec: Any) -> JSON:
    return {"apiVersion": API, "kind": "GoQueueConsumerGroup", "metadata": {"name": name},
            "spec": {"clusterRef": {"name": cluster}, **spec}}


def apply(kubectl: Kubectl, namespace: str, obj: JSON) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(obj))


def try_apply(kubectl: Kubectl, namespace: str, obj: JSON) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "apply", "-n", namespace,
                           "-f", "-"], input=json.dumps(obj), capture_output=True, text=True, timeout=60,
                          check=False)


def get(kubectl: Kubectl, namespace: str, kind: str, name: str) -> JSON | None:
    proc = subprocess.run([str(kubectl.binary), f"--kubeconfig={kubectl.kubeconfig}", "get", kind, name, "-n",
                           namespace, "-o", "json", "--ignore-not-found"], capture_output=True, text=True,
                          timeout=60, check=True)
    if not proc.stdout.strip():
        return None
    found: JSON = json.loads(proc.stdout)
    return found


OPERATOR_USER = "goqueue-operator"


def operator_credentials(kubectl: Kubectl, namespace: str, cluster: str = "goqueue") -> Credentials:
    """The operator's own principal on a cluster it runs (anonymous access is off there): what tests call the
    brokers as, like the operator and the runbook's in-pod CLIs."""
    secret = get(kubectl, namespace, "secret", f"{cluster}-operator-credentials")
    assert secret is not None, f"Secret {cluster}-operator-credentials in {namespace}"
    return Credentials(OPERATOR_USER, base64.b64decode(secret["data"]["password"]).decode())


def session_headers(url: str, credentials: Credentials) -> dict[str, str]:
    """`Authorization` for raw HTTP calls: a SCRAM exchange with the broker at `url`; the token is good on every
    broker of the cluster for an hour."""
    exchange = ClientExchange(credentials.user, credentials.password)
    with httpx.Client(base_url=url, timeout=30) as http:
        started = http.post("/v1/auth/scram/start", json={"clientFirst": exchange.client_first})
        assert started.status_code == 200, started.text
        finished = http.post("/v1/auth/scram/finish", json={
            "exchangeId": started.json()["exchangeId"], "clientFinal": exchange.respond(started.json()["serverFirst"])})
    assert finished.status_code == 200, finished.text
    return {"authorization": f"Bearer {finished.json()['token']}"}


def condition(obj: JSON | None, kind: str) -> JSON:
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found["type"] == kind:
            result: JSON = found
            return result
    return {}


def is_true(obj: JSON | None, kind: str) -> bool:
    return condition(obj, kind).get("status") == "True"


def wait_condition(kubectl: Kubectl, namespace: str, kind: str, name: str, cond: str, timeout_s: float,
                   status: str = "True") -> JSON:
    def check() -> JSON | None:
        obj = get(kubectl, namespace, kind, name)
        return obj if condition(obj, cond).get("status") == status else None

    def describe() -> str:
        obj = get(kubectl, namespace, kind, name)
        return json.dumps((obj or {}).get("status"), indent=1)[:3000]

    try:
        return wait_until(check, timeout_s, interval_s=0.5, message=f"{kind}/{name} {cond}={status}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus: {describe()}") from exc


def events(kubectl: Kubectl, namespace: str, name: str) -> list[JSON]:
    found = json.loads(kubectl("get", "events", "-n", namespace, "-o", "json",
                               f"--field-selector=involvedObject.name={name}"))
    items: list[JSON] = found["items"]
    return items


def event_reasons(kubectl: Kubectl, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(kubectl, namespace, name)]


def wait_events(kubectl: Kubectl, namespace: str, name: str, *reasons: str, timeout_s: float = 30) -> list[str]:
    """Wait until Events with all `reasons` exist for `name` (Events are written just after the action they
    report, so checking right after seeing the action would race them)."""
    found: list[str] = wait_until(lambda: (r := event_reasons(kubectl, namespace, name)) and set(reasons) <= set(r)
                                  and r, timeout_s, interval_s=0.5, message=f"Events {sorted(reasons)} for {name}")
    return found
