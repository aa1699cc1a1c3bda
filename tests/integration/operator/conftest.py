"""Fixtures for the operator's integration tests against the harness's real control plane.

* the harness's pytest plugin (control plane, kubectl, kubelet, `kube_namespace`) comes from the suite's addopts;
* `goqueue_crds` installs crds/ with server-side apply and waits until the API serves them;
* `operator` runs `goqueue-operator` as a subprocess (one per session) under its own least-privilege
  ServiceAccount, and fails each test whose part of the operator log holds a traceback or a 403;
* `goqueue_cluster` is a 3-broker GoQueueCluster brought up Ready by the operator, shared by a module.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s
from operator_kube import apply, cluster_manifest, get, operator_credentials, wait_condition
from operator_process import OperatorProcess, install_operator_rbac, problems_in_log, service_account_kubeconfig

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue_harness.pytest_plugin import NAMESPACE_DELETE_TIMEOUT_S, Kubectl, KubeletHandle
from goqueue_harness.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"


@pytest.fixture(scope="session")
def goqueue_crds(kubectl: Kubectl) -> list[str]:
    """The GoQueue CRDs, applied and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=goqueue-tests", "-f", str(CRD_DIR))
    names = ["goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io", "goqueueconsumergroups.goqueue.io",
             "goqueueusers.goqueue.io", "goqueuerebalances.goqueue.io"]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return names


@pytest.fixture(scope="module")
def module_namespace(request: pytest.FixtureRequest, kube_api: k8s.ApiClient) -> Iterator[str]:
    """One namespace for a module whose tests leave nothing running (validation only): saves a namespace
    deletion (about 5 s) per test. Deleted at the end, and must finish deleting."""
    core = k8s.CoreV1Api(kube_api)
    name = f"t-{request.module.__name__.removeprefix('test_').replace('_', '-')[:40]}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"goqueue.dev/test": "true"}}})
    try:
        wait_until(lambda: "default" in [sa.metadata.name for sa in core.list_namespaced_service_account(name).items],
                   30, message=f"default ServiceAccount in {name}")
        yield name
    finally:
        delete_namespace(core, name)


def delete_namespace(core: k8s.CoreV1Api, name: str) -> None:
    core.delete_namespace(name)

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_until(gone, NAMESPACE_DELETE_TIMEOUT_S, message=f"namespace {name} to finish deleting")


@pytest.fixture(scope="session")
def operator_session(kubectl: Kubectl, kubeconfig: Path, goqueue_crds: list[str], kubelet: KubeletHandle,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One goqueue-operator for the session, cluster-wide, as its ServiceAccount."""
    install_operator_rbac(kubectl)
    workdir = tmp_path_factory.mktemp("operator")
    config = service_account_kubeconfig(kubectl, kubeconfig, workdir / "kubeconfig")
    process = OperatorProcess(config, workdir / "operator.log").start()
    yield process
    code = process.stop()
    assert code == 0, f"goqueue-operator exited with {code} on SIGTERM:\n{process.tail()}"


@pytest.fixture
def operator(operator_session: OperatorProcess) -> Iterator[OperatorProcess]:
    """The session's operator; the test fails if its log gains a traceback or a 403 meanwhile."""
    offset = operator_session.log_size()
    yield operator_session
    problems = problems_in_log(operator_session.log_text(offset))
    assert not problems, "the operator logged unexpected errors:\n" + "\n".join(problems[:20])


@dataclass(frozen=True)
class RunningCluster:
    """A GoQueueCluster the operator brought up Ready: where it is and how to reach its brokers."""

    namespace: str
    name: str
    broker_urls: tuple[str, ...]
    credentials: Credentials  # the operator's principal: anonymous access is off

    def client(self, index: int = 0) -> GoQueueClient:
        return GoQueueClient(self.broker_urls[index], timeout_s=10, credentials=self.credentials)


@pytest.fixture(scope="module")
def goqueue_cluster(operator_session: OperatorProcess, kubectl: Kubectl, module_namespace: str) -> RunningCluster:
    """A 3-broker cluster shared by the tests of a module (each uses its own topic and group names)."""
    apply(kubectl, module_namespace, cluster_manifest())
    wait_condition(kubectl, module_namespace, "goqueuecluster", "goqueue", "Ready", 240)
    pods = [get(kubectl, module_namespace, "pod", f"goqueue-{i}") for i in range(3)]
    return RunningCluster(module_namespace, "goqueue",
                          tuple(f"http://{p['status']['podIP']}:8080" for p in pods if p is not None),
                          operator_credentials(kubectl, module_namespace))
