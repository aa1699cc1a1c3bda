"""A charts/goqueue release with TLS and an administrator on the local control plane (issue 15, items 3 and 7): the
certificate from an existing Secret (kubernetes.io/tls, as cert-manager or a corporate CA leaves it), probes over
HTTPS, brokers replicating over mutual TLS, `helm test` through the client Service over HTTPS as the administrator
— and no password in any broker's log."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_release import RELEASE, Release, install_release
from cryptography import x509
from kubernetes import client as k8s
from tls_material import LOOPBACK_SANS, TestCa

from goqueue_harness.binaries import BinDir
from goqueue_harness.pytest_plugin import KubeletHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory, k8s_binaries: BinDir, kubeconfig: Path,
            kube_api: k8s.ApiClient, kubelet: KubeletHandle) -> Iterator[Release]:
    ca = TestCa(tmp_path_factory.mktemp("chart-ca"))

    def tls_secret(namespace: str) -> None:
        names = [f"*.goqueue-headless.{namespace}.svc.cluster.local", f"*.goqueue-headless.{namespace}.svc",
                 "goqueue", f"goqueue.{namespace}.svc", f"goqueue.{namespace}.svc.cluster.local"]
        issued = ca.issue("chart-broker", "goqueue", sans=(*LOOPBACK_SANS, *(x509.DNSName(n) for n in names)))
        k8s.CoreV1Api(kube_api).create_namespaced_secret(namespace, {
            "metadata": {"name": "corp-tls"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": issued.cert.read_text(), "tls.key": issued.key.read_text(),
                           "ca.crt": ca.cert_file.read_text()}})

    with install_release("chart-tls", k8s_binaries, kubeconfig, kube_api, kubelet, prepare=tls_secret,
                         values=("--set", "tls.enabled=true", "--set", "tls.existingSecret=corp-tls",
                                 "--set", "auth.adminUser=ops")) as installed:
        yield installed


def test_helm_test_goes_over_https_as_the_administrator(release: Release) -> None:
    output = release.helm_run("test", RELEASE, "--timeout", "180s")  # fails the test unless the Pod Succeeded
    assert "Succeeded" in output, output
    log = release.kubelet.logs(release.namespace, f"{RELEASE}-test", "produce-consume")
    assert "helm test: produced and consumed one record through https://goqueue:8080" in log, log


def test_the_brokers_are_ready_through_https_probes_and_log_no_password(release: Release) -> None:
    logs = release.broker_logs()
    # helm test's produce is acks=all on a topic of replication factor 3: both followers fetched it from the leader
    # over the internal listener, which with TLS on accepts only mutual TLS (tests/integration/test_tls.py).
    raft = release.raft_password().decode()
    admin = base64.b64decode(release.core.read_namespaced_secret("goqueue-admin", release.namespace)
                             .data["password"]).decode()
    for secret in (raft, admin):
        assert secret not in logs
    for pod in release.pods():
        if pod.metadata.name == f"{RELEASE}-test":
            continue  # the helm test Pod, done
        env = {e.name for e in pod.spec.containers[0].env or []}
        assert "GOQUEUE_CLUSTER_PASSWORD" not in env
        assert pod.status.container_statuses[0].ready  # over HTTPS probes
