"""An acks=all producer that follows the broker pods as they restart (their IPs change with each new pod)."""

from __future__ import annotations

import base64
import threading

import httpx
from cluster_process import History
from kubernetes import client as k8s
from operator_kube import OPERATOR_USER, session_headers

from goqueue.client.auth import Credentials


class PodProducer(threading.Thread):
    """acks=all produce through whichever broker pods are Ready now; records only acknowledged writes."""

    def __init__(self, core: k8s.CoreV1Api, namespace: str, topic: str, history: History,
                 cluster: str = "goqueue") -> None:
        super().__init__(daemon=True)
        self.core, self.namespace, self.topic, self.history = core, namespace, topic, history
        self.cluster = cluster
        self.stop_flag = threading.Event()
        self.failures = 0
        self.sequence = 0

    def urls(self) -> list[str]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector="app.kubernetes.io/name=goqueue").items
        return [f"http://{p.status.pod_ip}:8080" for p in pods if p.status.pod_ip and any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]

    def session(self, url: str) -> dict[str, str]:
        """The operator's principal (anonymous access is off on the operator's brokers); none while its Secret does
        not exist or `url` is a broker that does not know it yet (a chart's broker before the operator adopts it)."""
        try:
            secret = self.core.read_namespaced_secret(f"{self.cluster}-operator-credentials", self.namespace)
            password = base64.b64decode(secret.data["password"]).decode()
            return session_headers(url, Credentials(OPERATOR_USER, password))
        except (k8s.ApiException, AssertionError, httpx.HTTPError):
            return {}

    def run(self) -> None:
        urls: list[str] = []
        headers: dict[str, str] = {}
        with httpx.Client(timeout=10) as http:
            while not self.stop_flag.is_set():
                if not urls:
                    urls = self.urls()
                    if not urls:
                        self.stop_flag.wait(0.2)
                        continue
                values = [f"m-{self.sequence + i}" for i in range(5)]
                body = {"acks": "all", "records": [{"value": v} for v in values]}
                try:
                    response = http.post(f"{urls[0]}/v1/topics/{self.topic}/records", json=body, headers=headers)
                except httpx.HTTPError:
                    response = None
                if response is not None and response.status_code == 401:  # anonymous refused, or a token unknown
                    headers = {} if headers else self.session(urls[0])
                if response is not None and response.status_code == 200:
                    self.history.record(response.json()["offsets"], values)
                    self.sequence += len(values)
                else:
                    self.failures += 1
                    urls = urls[1:]  # try the next broker; refresh from Kubernetes when out of them
                    self.stop_flag.wait(0.1)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(30)
