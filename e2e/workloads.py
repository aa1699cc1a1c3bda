"""What the scenarios run against a cluster: client pods, an acks=all producer, GoQueue resources and waits.

Kubernetes reads and writes go through kubectl (`operator_kube`'s helpers from tests/integration/operator, which
only need a kubectl binary and a kubeconfig, so they work on every backend); the produce/consume bookkeeping is
`cluster_process.History` and `consume_all` from tests/integration.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from backends import Backend
from cluster_process import History, consume_all
from operator_kube import (
    OPERATOR_USER,
    apply,
    cluster_manifest,
    get,
    is_true,
    operator_credentials,
    session_headers,
    wait_condition,
)

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue_harness.waiting import wait_until

JSON = dict[str, Any]
BROKERS = 3
CLUSTER = "goqueue"
READY_TIMEOUT_S = 240.0
CLIENT_CA_DIR = "/var/run/goqueue/ca"
BROKER_SELECTOR = "app.kubernetes.io/name=goqueue"


def merged(base: JSON, extra: JSON) -> JSON:
    """`base` with `extra` merged into it, dictionaries recursively."""
    result = dict(base)
    for key, value in extra.items():
        result[key] = merged(result[key], value) if isinstance(value, dict) and isinstance(
            result.get(key), dict) else value
    return result


def create_namespace(backend: Backend, prefix: str) -> str:
    name = f"e2e-{prefix}-{secrets.token_hex(3)}"
    backend.kubectl("create", "namespace", name)
    backend.kubectl("label", "namespace", name, "goqueue.dev/test=e2e")
    wait_until(lambda: backend.kubectl("get", "serviceaccount", "default", "-n", name, "--ignore-not-found").strip(),
               60, message=f"ServiceAccount default in {name}")
    return name


def delete_namespace(backend: Backend, name: str, timeout_s: float = 180) -> None:
    backend.kubectl("delete", "namespace", name, "--wait=true", f"--timeout={int(timeout_s)}s",
                    timeout_s=timeout_s + 30)


@dataclass
class GoQueueCluster:
    """A GoQueueCluster the operator runs, and how to reach it from this process."""

    backend: Backend
    namespace: str
    name: str = CLUSTER
    changes: JSON = field(default_factory=dict)

    def manifest(self) -> JSON:
        """The cluster's manifest: the tests' small cluster, this backend's needs, then the scenarios' changes."""
        base = cluster_manifest(self.name)
        base["spec"] = merged(merged(base["spec"], self.backend.cluster_spec()), self.changes)
        return base

    def apply(self, **spec: Any) -> None:
        """Apply the manifest with `spec` changed; changes accumulate (a later scenario keeps an earlier version)."""
        self.changes = merged(self.changes, spec)
        apply(self.backend.kubectl, self.namespace, self.manifest())

    def get(self, kind: str = "goqueuecluster", name: str | None = None) -> JSON | None:
        return get(self.backend.kubectl, self.namespace, kind, name or self.name)

    def status(self) -> JSON:
        found: JSON = (self.get() or {}).get("status") or {}
        return found

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.backend.kubectl(*args, "-n", self.namespace, input_text=input_text)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> JSON:
        """Ready, every broker pod Ready and none terminating, no procedure in progress."""
        def settled() -> JSON | None:
            cluster = self.get()
            status = (cluster or {}).get("status") or {}
            if not (is_true(cluster, "Ready") and status.get("phase") == "Running"
                    and status.get("readyReplicas") == (cluster or {})["spec"]["replicas"]):
                return None
            return cluster if len(self.backend.ready_broker_urls(self.namespace)) == BROKERS else None

        try:
            found: JSON = wait_until(settled, timeout_s, interval_s=1, message=f"GoQueueCluster {self.name} settled")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstatus: {json.dumps(self.status(), indent=1)[:3000]}") from None
        return found

    def pod_uids(self) -> dict[str, str]:
        pods = json.loads(self.kubectl("get", "pods", "-l", BROKER_SELECTOR, "-o", "json"))["items"]
        return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}

    def url(self, ordinal: int = 0) -> str:
        return self.backend.broker_url(self.namespace, f"{self.name}-{ordinal}")

    def credentials(self) -> Credentials:
        """The operator's principal: anonymous access is off on the operator's clusters (docs/SECURITY.md)."""
        return operator_credentials(self.backend.kubectl, self.namespace, self.name)

    def session(self) -> dict[str, str]:
        """Authorization for raw HTTP calls, as the operator's principal (good on every broker for an hour)."""
        return session_headers(self.url(0), self.credentials())

    def client(self, ordinal: int = 0) -> GoQueueClient:
        return GoQueueClient(self.url(ordinal), timeout_s=10, credentials=self.credentials())

    def wait_resource(self, kind: str, name: str, condition: str = "Ready", timeout_s: float = 90,
                      status: str = "True") -> JSON:
        return wait_condition(self.backend.kubectl, self.namespace, kind, name, condition, timeout_s, status=status)


def event_reasons(backend: Backend, namespace: str, name: str) -> set[str]:
    found = json.loads(backend.kubectl("get", "events", "-n", namespace, "-o", "json",
                                       f"--field-selector=involvedObject.name={name}"))
    return {e["reason"] for e in found["items"]}


def wait_events(backend: Backend, namespace: str, name: str, *reasons: str, timeout_s: float = 30) -> set[str]:
    """Events are written just after the action they report: wait for them rather than race them."""
    def emitted() -> set[str] | None:
        found = event_reasons(backend, namespace, name)
        return found if found >= set(reasons) else None

    return wait_until(emitted, timeout_s, interval_s=0.5, message=f"Events {sorted(reasons)} for {name}")


CLIENT_CREDENTIALS_DIR = "/etc/goqueue-client"


def run_client_pod(backend: Backend, namespace: str, name: str, script: str, timeout_s: float = 120,
                   cluster: str = CLUSTER, ca_secret: str | None = None) -> str:
    """A pod (the broker image: goqueue-cli and goqueue-admin inside) running `sh -c script` once; its log.
    Inside a pod, Service names resolve: on kind through cluster DNS, on the local backend through the harness's
    per-pod hosts file, so `http://goqueue:8080` is the client Service on both. The CLIs act as the operator's
    principal of `cluster` when its Secret exists (an operator's cluster: anonymous access is off), anonymously
    otherwise (the plain chart's brokers allow it). `ca_secret`: a Secret whose ca.crt the CLIs trust (mounted,
    GOQUEUE_CA_FILE), as an application of a TLS cluster mounts `<cluster>-cluster-ca-cert`."""
    password = f"{CLIENT_CREDENTIALS_DIR}/password"
    as_operator = (f'if [ -f {password} ]; then export GOQUEUE_USER={OPERATOR_USER} GOQUEUE_PASSWORD_FILE={password}; '
                   "fi; ")
    container: JSON = {"name": "client", "image": backend.client_image, "imagePullPolicy": "IfNotPresent",
                       "command": ["sh", "-c", as_operator + script],
                       "volumeMounts": [{"name": "credentials", "mountPath": CLIENT_CREDENTIALS_DIR,
                                         "readOnly": True}]}
    volumes: list[JSON] = [{"name": "credentials", "secret": {"secretName": f"{cluster}-operator-credentials",
                                                              "optional": True}}]
    if ca_secret is not None:
        volumes.append({"name": "ca", "secret": {"secretName": ca_secret}})
        container["volumeMounts"].append({"name": "ca", "mountPath": CLIENT_CA_DIR, "readOnly": True})
        container["env"] = [{"name": "GOQUEUE_CA_FILE", "value": f"{CLIENT_CA_DIR}/ca.crt"}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app.kubernetes.io/name":
                                                                                       "goqueue-e2e-client"}},
           "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False, "volumes": volumes,
                    "containers": [container]}}
    backend.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(pod))

    def finished() -> str | None:
        phase: str = backend.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}").strip()
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, timeout_s, interval_s=0.5, message=f"client pod {name} to finish")
    log = backend.pod_log(namespace, name, "client")
    assert phase == "Succeeded", f"client pod {name} {phase}:\n{log[-4000:]}"
    return log


class AckedProducer(threading.Thread):
    """Writes numbered records with acks=all through whichever broker pods are Ready now, until stopped; records
    each acknowledged write (offsets and values) in a `History`. A refused or failed request moves on to the next
    broker; out of brokers, it asks Kubernetes again (restarted pods have new addresses)."""

    def __init__(self, cluster: GoQueueCluster, topic: str, batch: int = 5) -> None:
        super().__init__(daemon=True)
        self.cluster, self.topic, self.batch = cluster, topic, batch
        self.history = History()
        self.stopping = threading.Event()
        self.failures = 0
        self.errors: list[str] = []

    def run(self) -> None:
        urls: list[str] = []
        sequence = 0
        with httpx.Client(timeout=10, headers=self.cluster.session()) as http:
            while not self.stopping.is_set():
                if not urls:
                    try:
                        urls = self.cluster.backend.ready_broker_urls(self.cluster.namespace)
                    except AssertionError as exc:  # a pod replaced between the list and the address lookup
                        self.errors.append(str(exc)[:300])
                    if not urls:
                        self.stopping.wait(0.2)
                        continue
                values = [f"{self.topic}-{sequence + i}" for i in range(self.batch)]
                try:
                    response: httpx.Response | None = http.post(
                        f"{urls[0]}/v1/topics/{self.topic}/records",
                        json={"acks": "all", "records": [{"value": v} for v in values]})
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 200:
                    self.history.record(response.json()["offsets"], values)
                    sequence += self.batch
                    continue
                self.failures += 1
                if response is not None and not _retriable(response):
                    self.errors.append(response.text[:300])
                urls = urls[1:]
                self.stopping.wait(0.1)

    def acknowledged(self) -> int:
        return self.history.count()

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the producer did not stop"


def _retriable(response: httpx.Response) -> bool:
    try:
        return bool(response.json().get("error", {}).get("retriable", False))
    except ValueError:
        return False


def verify_no_acknowledged_loss(cluster: GoQueueCluster, history: History, topic: str, partitions: int) -> None:
    """Read every partition from its start and check each acknowledged record is there, at its offset."""
    with httpx.Client(base_url=cluster.url(0), timeout=30, headers=cluster.session()) as http:
        history.check(consume_all(http, topic, partitions, timeout_s=60))


def elapsed(start: float) -> float:
    return round(time.monotonic() - start, 1)
