"""pytest fixtures for a real control plane: ``-p goqueue_harness.pytest_plugin``.

Why session scope: starting etcd, kube-apiserver and kube-controller-manager
takes seconds, a namespace per test milliseconds; so one control plane (and one
process-kubelet) serves the session and every test gets a fresh namespace that
is deleted, and must finish deleting, afterwards. A control plane already
running in the state dir (``make up``) is reused and left running; one this
session started is stopped at its end. Missing binaries are built; a failed
build fails the tests (never skips them).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from goqueue_harness.binaries import BinDir, locate_binaries
from goqueue_harness.controlplane import ControlPlane, default_state_dir
from goqueue_harness.kubelet.daemon import kubelet_dir, kubelet_running, start_kubelet, stop_kubelet
from goqueue_harness.kubelet.logs import container_log
from goqueue_harness.waiting import wait_until

NAMESPACE_DELETE_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Kubectl:
    """``kubectl`` (the pinned build) bound to the session's kubeconfig."""

    binary: Path
    kubeconfig: Path

    def __call__(self, *args: str, input_text: str | None = None, check: bool = True, timeout_s: float = 120) -> str:
        proc = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text, capture_output=True, text=True, timeout=timeout_s, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout


@dataclass(frozen=True)
class KubeletHandle:
    """The running process-kubelet: where its pods' folders and logs are."""

    directory: Path

    def logs(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> str:
        return container_log(self.directory, namespace, pod, container, previous=previous)


# -- lanes -------------------------------------------------------------------------------------------------------
# `make test` runs pytest on two xdist workers (`-n 2`). Tests that use a machine-wide piece — the tests' control
# plane and its kubelet, Docker and kind, `make up`/`make down` (which stop a Docker daemon the harness started), the
# network-partition test's bridge and firewall rule — form one work unit, run one after another in one worker as
# they always were. Every other test file (unit tests; broker processes on ports the OS picked, in their own temp
# dirs) is a unit of its own, so a module's fixtures are set up once, and those files run in the other worker
# meanwhile (the cluster worker takes files too once the cluster lane is done). Most of the cluster lane's time is
# spent waiting on Kubernetes, so the two lanes share two cores well.
#
# Why a scheduler of our own rather than `xdist_group` markers: xdist 3.8 groups by rewriting `item._nodeid`, which
# pytest 9.2 no longer reads, so the markers are silently ignored and cluster tests ran in both workers at once.
CLUSTER_LANE = "cluster"
CLUSTER_PATHS = ("tests/harness/", "tests/integration/operator/", "tests/integration/charts/", "e2e/",
                 "tests/integration/test_images.py", "tests/integration/test_network_partition.py")
CLUSTER_FIXTURES = frozenset({"control_plane", "kubeconfig", "kubectl", "kubelet", "kube_api", "kube_namespace"})
_STRAYS = pytest.StashKey[set[str]]()


def lane_of(nodeid: str) -> str:
    """The work unit a test belongs to: the cluster lane, or its file."""
    return CLUSTER_LANE if nodeid.startswith(CLUSTER_PATHS) else nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test outside CLUSTER_PATHS that uses the tests' control plane would run beside the cluster lane and race
    it; such a test fails at set-up and says where it belongs (raising here would only crash xdist's workers)."""
    config.stash[_STRAYS] = {item.nodeid for item in items if lane_of(item.nodeid) != CLUSTER_LANE
                             and not CLUSTER_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))}


@pytest.hookimpl(tryfirst=True)  # before any fixture of the stray test is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.nodeid in item.config.stash.get(_STRAYS, set()):
        pytest.fail(f"{item.nodeid} uses the control plane but is not in the cluster lane: add its path to "
                    "CLUSTER_PATHS in goqueue_harness/pytest_plugin.py", pytrace=False)


def lanes_scheduler() -> type:
    """LoadScope's scheduler with `lane_of` as the scope: the biggest unit (the cluster lane) goes out first, the
    test files fill the other worker. Made on demand: xdist is imported only when it distributes."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]  # xdist ships no types

    class Lanes(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return lane_of(nodeid)

    return Lanes


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Whenever xdist distributes (`-n N`, whatever `--dist` says), it distributes by lane."""
    return lanes_scheduler()(config, log)


@pytest.fixture(scope="session")
def k8s_binaries() -> BinDir:
    return locate_binaries()


def tests_state_dir() -> Path:
    """The tests' control plane lives beside `make up`'s, never in it: the demo's GoQueueCluster would otherwise
    be reconciled by two operators at once (the demo's and the tests' cluster-wide one)."""
    demo = default_state_dir()
    return demo.with_name(f"{demo.name}-tests")


@pytest.fixture(scope="session")
def control_plane(k8s_binaries: BinDir) -> Iterator[ControlPlane]:
    cp = ControlPlane(tests_state_dir())
    owned = not cp.is_running()
    if owned:
        try:
            cp.start(bins=k8s_binaries)
        except BaseException:
            cp.stop()  # daemons started before the failure: this fixture has no teardown to stop them
            raise
    yield cp
    if owned:
        stop_kubelet(cp)
        cp.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kubectl(k8s_binaries: BinDir, kubeconfig: Path) -> Kubectl:
    return Kubectl(k8s_binaries.kubectl, kubeconfig)


@pytest.fixture(scope="session")
def kubelet(control_plane: ControlPlane) -> Iterator[KubeletHandle]:
    owned = not kubelet_running(control_plane)
    if owned:
        try:
            start_kubelet(control_plane)
        except BaseException:
            stop_kubelet(control_plane)  # a daemon that started but never got ready
            raise
    yield KubeletHandle(kubelet_dir(control_plane))
    if owned:
        stop_kubelet(control_plane)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    """An official ``kubernetes`` client for the session's cluster (cluster-admin)."""
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def kube_namespace(request: pytest.FixtureRequest, kube_api: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace; deleted after the test, and the test fails if deletion does not finish."""
    core = k8s.CoreV1Api(kube_api)
    name = _namespace_name(request.node.name)
    core.create_namespace({"metadata": {"name": name, "labels": {"goqueue.dev/test": "true"}}})
    try:
        wait_until(lambda: _default_service_account(core, name), 30, message=f"default ServiceAccount in {name}")
        yield name
    finally:
        core.delete_namespace(name)
        wait_until(lambda: _namespace_gone(core, name), NAMESPACE_DELETE_TIMEOUT_S,
                   message=f"namespace {name} to finish deleting")


def _default_service_account(core: k8s.CoreV1Api, namespace: str) -> bool:
    names: Sequence[str] = [sa.metadata.name for sa in core.list_namespaced_service_account(namespace).items]
    return "default" in names


def _namespace_gone(core: k8s.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False
