"""Fixtures of the end-to-end scenarios (see README.md).

* `--e2e-backend` (or `GOQUEUE_E2E_BACKEND`): `local,kind` (default: both), `local` or `kind`. Every scenario is
  collected once per backend; a variant whose backend is not selected is skipped with that reason. A selected
  backend that cannot run fails its scenarios with the reason (for kind: why no Docker daemon answers) — never a
  skip.
* `backend` — the cluster, one per backend for the session; `operator_installed` — the operator, installed once;
  `shared_cluster` — one 3-broker GoQueueCluster for the scenarios that can share it (each uses its own topics
  and groups and leaves the cluster settled); `cluster` — that cluster, settled again before each scenario.
* `log_watch` (autouse) — each scenario fails when the operator or a broker logged an unexpected error during it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent
REPO = E2E.parent
# Helpers shared with the integration tier (no __init__.py there: pytest's rootdir-less "prepend" import mode puts
# each test directory on sys.path; these are the same directories).
for helpers in (REPO / "tests" / "integration", REPO / "tests" / "integration" / "operator"):
    if str(helpers) not in sys.path:
        sys.path.append(str(helpers))

from backends import OPERATOR_RELEASE, Backend, KindBackend, LocalBackend  # noqa: E402
from log_check import LogWatch  # noqa: E402
from workloads import GoQueueCluster, create_namespace, delete_namespace  # noqa: E402

from goqueue_harness.binaries import BinDir  # noqa: E402

BACKENDS = ("local", "kind")
OPTION = "--e2e-backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, default=os.environ.get("GOQUEUE_E2E_BACKEND", "local,kind"),
                     help="where the e2e scenarios run: local (the harness's control plane), kind, or local,kind "
                          "(env GOQUEUE_E2E_BACKEND)")


def selected_backends(config: pytest.Config) -> set[str]:
    chosen = {b.strip() for b in str(config.getoption(OPTION)).split(",") if b.strip()}
    unknown = chosen - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"{OPTION}: unknown backend(s) {sorted(unknown)}; choose from {', '.join(BACKENDS)}")
    return chosen


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = selected_backends(config)
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("backend") if callspec is not None else None
        # A scenario that needs a real kubelet (kubectl exec/logs/port-forward) exists for kind only: its local
        # variant is not a scenario that could run, so it is deselected rather than reported as skipped.
        (dropped if param == "local" and item.get_closest_marker("kind_only") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    for item in items:
        if E2E not in Path(str(item.path)).parents:
            continue
        assert item.get_closest_marker("e2e"), f"{item.nodeid}: e2e scenarios carry pytestmark = pytest.mark.e2e"
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("backend") if callspec is not None else None
        if param is not None and param not in chosen:
            item.add_marker(pytest.mark.skip(
                reason=f"e2e backend {param} not selected ({OPTION}={config.getoption(OPTION)})"))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    bins: BinDir = request.getfixturevalue("k8s_binaries")  # the pinned kubectl and helm, on both backends
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    chosen: Backend
    if request.param == "local":
        state_dir = Path(os.environ.get("GOQUEUE_E2E_STATE_DIR") or workdir / "controlplane")
        chosen = LocalBackend(bins, state_dir, workdir)
    else:
        chosen = KindBackend(bins, workdir)
    try:
        chosen.start()
        yield chosen
    finally:
        chosen.stop()


@pytest.fixture(scope="session")
def log_watcher(backend: Backend) -> LogWatch:
    watch = LogWatch(backend.log_sources)
    watch.skip_to_end()  # a reused control plane (GOQUEUE_E2E_STATE_DIR) may hold older pods' logs
    return watch


@pytest.fixture(autouse=True)
def log_watch(log_watcher: LogWatch) -> LogWatch:
    """Checked after the scenario's body by `pytest_runtest_call` below, so a problem fails the scenario itself."""
    return log_watcher


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    watch = getattr(item, "funcargs", {}).get("log_watch")
    if not isinstance(watch, LogWatch):
        return (yield)
    try:
        result = yield
    except BaseException:
        problems = watch.check()
        if problems:  # the scenario failed already: report the log lines beside its failure, do not mask it
            item.add_report_section("call", "unexpected log lines", "\n".join(problems[:30]))
        raise
    problems = watch.check()
    assert not problems, ("the operator or a broker logged unexpected errors during this scenario:\n"
                          + "\n".join(problems[:30]))
    return result


@pytest.fixture(scope="session")
def operator_installed(backend: Backend) -> str:
    """The operator's helm release (in OPERATOR_NAMESPACE), installed once per backend."""
    backend.install_operator()
    return OPERATOR_RELEASE


@pytest.fixture(scope="session")
def shared_cluster(backend: Backend, operator_installed: str) -> Iterator[GoQueueCluster]:
    namespace = create_namespace(backend, "shared")
    try:  # a cluster that never gets Ready is deleted with its namespace too
        cluster = GoQueueCluster(backend, namespace)
        cluster.apply()
        cluster.wait_ready()
        yield cluster
    finally:
        delete_namespace(backend, namespace)


@pytest.fixture
def cluster(shared_cluster: GoQueueCluster) -> GoQueueCluster:
    """The shared cluster, settled (a previous scenario may have just restarted or resized it)."""
    shared_cluster.wait_ready()
    return shared_cluster


@pytest.fixture
def namespace(backend: Backend, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the scenario's own, deleted afterwards (and it must finish deleting)."""
    name = create_namespace(backend, request.node.originalname.removeprefix("test_").replace("_", "-")[:30])
    yield name
    delete_namespace(backend, name)
