"""Fixtures for the operator's integration tests against the harness's real control plane.

* the harness's pytest plugin (control plane, kubectl, kubelet, `kube_namespace`) is registered here when the
  suite did not register it already;
* `goqueue_crds` installs crds/ with server-side apply and waits until the API serves them;
* `operator` (in operator_process.py) runs `goqueue-operator` as a subprocess under its own least-privilege
  ServiceAccount and fails the test when its log holds a traceback.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

import goqueue_harness.pytest_plugin as harness_plugin
from goqueue_harness.pytest_plugin import NAMESPACE_DELETE_TIMEOUT_S, Kubectl
from goqueue_harness.waiting import wait_until

HARNESS_PLUGIN = "goqueue_harness.pytest_plugin"
REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(HARNESS_PLUGIN):
        config.pluginmanager.register(harness_plugin, HARNESS_PLUGIN)


@pytest.fixture(scope="session")
def goqueue_crds(kubectl: Kubectl) -> list[str]:
    """The three GoQueue CRDs, applied and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=goqueue-tests", "-f", str(CRD_DIR))
    names = ["goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io", "goqueueconsumergroups.goqueue.io"]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names])
    return names


@pytest.fixture(scope="module")
def module_namespace(request: pytest.FixtureRequest, kube_api: k8s.ApiClient) -> Iterator[str]:
    """One namespace for a module whose tests leave nothing running (validation only): saves a namespace
    deletion (about 5 s) per test. Deleted at the end, and must finish deleting."""
    core = k8s.CoreV1Api(kube_api)
    name = f"t-{request.module.__name__.removeprefix('test_').replace('_', '-')[:40]}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": {"goqueue.dev/test": "true"}}})
    yield name
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
