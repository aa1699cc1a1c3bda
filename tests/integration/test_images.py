"""Dockerfile.broker and Dockerfile.operator, built and run: what the charts and the runbook expect of the images.

Both images are built once for the module through `goqueue_harness.images` (the public `python:3.11-slim-bookworm`
base where it can be pulled, else the local Debian base), under tags unique to this run that are removed at the
end. The checks are made on the built images, never on the Dockerfiles' text (tests/unit/test_dockerfiles.py does
that): the configured and the effective user, the entrypoint, no compiler in the final image; then the containers
as the charts run them (non-root, read-only root file system, an emptyDir-like /tmp, no capabilities):

* the broker, with a volume on /data, answers `/readyz` 200 on its container IP (where a kubelet probes it), turns
  `healthy` by the image's own HEALTHCHECK, and `goqueue-cli` / `goqueue-admin` work inside it via `docker exec`
  (the runbook's `kubectl exec … goqueue-0 -- goqueue-cli …`);
* the operator cannot start without a Kubernetes API server (it retries its startup every 60 s and serves nothing
  meanwhile), so it gets a real one: the harness's control plane on loopback, reached with host networking and a
  kubeconfig; it watches a namespace of its own only. It answers `/healthz` and `/metrics` on port 8081 (bound to a
  loopback address of its own, as the chart's `metrics.bind: PodIP` does where pods share a network namespace)
  and reconciles a GoQueueTopic through the API server.

Each image's build time and size are printed (also without `-s`: CI logs carry them). Docker missing fails the
module (`ensure_docker` raises), it never skips.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from goqueue_harness.docker import ensure_docker
from goqueue_harness.images import Built, build_broker_and_operator, image_exists, python_base
from goqueue_harness.pytest_plugin import Kubectl
from goqueue_harness.waiting import wait_until

# Cold builds (the local base made by mmdebstrap, wheels downloaded) take minutes, not the suite's default 300 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
USER = "10001:10001"
ENTRYPOINTS = {"broker": "goqueue-broker", "operator": "goqueue-operator"}
# Compilers and build tools that must not reach a final image (the wheels are built in the build stage).
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make", "cmake", "ld", "rustc")
# Debian packages of a toolchain besides the *-dev ones (gcc-12-base is the runtime libraries' metadata, allowed).
BUILD_PACKAGES = re.compile(r"build-essential|binutils|cpp(-\d+)?|(gcc|g\+\+|clang)(-\d+)?|make|cmake|rustc|cargo")
# The charts' securityContext: non-root, read-only root file system with an emptyDir on /tmp, no capabilities.
HARDENED = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# Above today's sizes on the local Debian base (broker 503 MB, operator 490 MB), below what a regression adds: apt's
# downloaded packages and caches left in a layer (+84 MB: the broker was 587 MB) or a compiler toolchain (gcc alone
# is over 100 MB) fail the test rather than going unnoticed. A new dependency may need a new budget: say so then.
SIZE_BUDGET_BYTES = 560 * 10**6
OPERATOR_PORT = 8081
CRDS = ("goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io", "goqueueconsumergroups.goqueue.io",
        "goqueueusers.goqueue.io", "goqueuerebalances.goqueue.io")
READY_TIMEOUT_S = 90.0


def docker(*args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def inspect(ref: str, template: str) -> str:
    return docker("inspect", "-f", template, ref).stdout.strip()


def run_in_image(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    """`command` in a throw-away container of `image`, as its configured user, with the charts' hardening."""
    return docker("run", "--rm", *HARDENED, "--entrypoint", command[0], image, *command[1:], check=False)


@dataclass(frozen=True)
class Images:
    base: str
    built: dict[str, Built]

    def tag(self, name: str) -> str:
        return self.built[name].tag


@pytest.fixture(scope="module")
def images() -> Iterator[Images]:
    ensure_docker()  # raises DockerUnavailable (one line saying why): the module fails, it does not skip
    run = secrets.token_hex(4)
    tags = {name: f"goqueue-test-images/{name}:{run}" for name in ENTRYPOINTS}
    try:
        base = python_base()
        broker, operator = build_broker_and_operator([tags["broker"]], [tags["operator"]], version=VERSION)
        yield Images(base, {"broker": broker, "operator": operator})
    finally:
        for tag in tags.values():
            if image_exists(tag):
                docker("image", "rm", tag)


def test_build_time_and_size_are_reported_and_within_budget(images: Images, capsys: pytest.CaptureFixture[str],
                                                            ) -> None:
    lines = [f"image {name}: {built.tag}, {built.size_bytes / 1e6:.0f} MB, built in {built.seconds:.1f} s "
             f"(BASE_IMAGE {images.base})" for name, built in images.built.items()]
    with capsys.disabled():  # into the test log even without -s
        print("\n" + "\n".join(lines))
    for name, built in images.built.items():
        assert 0 < built.size_bytes < SIZE_BUDGET_BYTES, f"the {name} image is over its size budget: {lines}"


@pytest.mark.parametrize("name", sorted(ENTRYPOINTS))
def test_the_image_runs_as_the_non_root_user_10001(images: Images, name: str) -> None:
    image = images.tag(name)
    assert inspect(image, "{{.Config.User}}") == USER
    ids = run_in_image(image, "sh", "-c", "id -u; id -g; id -un")
    assert ids.returncode == 0, ids.stderr
    assert ids.stdout.split() == ["10001", "10001", "goqueue"], ids.stdout


@pytest.mark.parametrize("name", sorted(ENTRYPOINTS))
def test_the_entrypoint_is_the_goqueue_command(images: Images, name: str) -> None:
    image = images.tag(name)
    assert json.loads(inspect(image, "{{json .Config.Entrypoint}}")) == [ENTRYPOINTS[name]]
    assert json.loads(inspect(image, "{{json .Config.Cmd}}")) is None, "arguments belong to the chart, not the image"
    # The entrypoint itself (no --entrypoint override) is the project's command, at the version that was built.
    version = docker("run", "--rm", *HARDENED, image, "--version", check=False)
    assert version.returncode == 0, version.stdout + version.stderr
    assert version.stdout.strip() == f"{ENTRYPOINTS[name]} {VERSION}"
    assert inspect(image, '{{index .Config.Labels "org.opencontainers.image.version"}}') == VERSION


@pytest.mark.parametrize("name", sorted(ENTRYPOINTS))
def test_no_compiler_in_the_final_image(images: Images, name: str) -> None:
    image = images.tag(name)
    found = run_in_image(image, "sh", "-c", f"for c in {' '.join(COMPILERS)}; do command -v $c || true; done")
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [], f"compilers on PATH in the {name} image: {found.stdout.split()}"
    packages = run_in_image(image, "dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\n")
    assert packages.returncode == 0, packages.stderr
    installed = [line.split()[1] for line in packages.stdout.splitlines() if line.startswith("ii")]
    assert len(installed) > 20, f"dpkg-query listed too little to be trusted: {packages.stdout}"
    dev = [p for p in installed if p.endswith("-dev") or BUILD_PACKAGES.fullmatch(p)]
    assert dev == [], f"build packages in the {name} image: {dev}"


# -- the broker container ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    name: str

    def exec(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *command, check=check)

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def stop_cleanly(self) -> None:
        """SIGTERM (docker stop); the process must exit 0 and have logged no traceback."""
        docker("stop", "-t", "30", self.name, timeout_s=60)
        code = inspect(self.name, "{{.State.ExitCode}}")
        log = self.logs()
        assert code == "0", f"{self.name} exited with {code} on SIGTERM:\n{log[-4000:]}"
        assert "Traceback" not in log, f"{self.name} logged a traceback:\n{log[-4000:]}"


def readyz_inside(broker: Container) -> str:
    probe = ("import urllib.request as u; r = u.urlopen('http://127.0.0.1:8080/readyz', timeout=2); "
             "print(r.status, r.read().decode())")
    proc = broker.exec("python", "-c", probe, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture(scope="module")
def broker(images: Images) -> Iterator[Container]:
    run = secrets.token_hex(4)
    container, volume = Container(f"goqueue-test-broker-{run}"), f"goqueue-test-data-{run}"
    docker("volume", "create", volume)
    try:
        docker("run", "-d", "--name", container.name, *HARDENED, "-v", f"{volume}:/data", images.tag("broker"))
        try:
            wait_until(lambda: readyz_inside(container) or inspect(container.name, "{{.State.Status}}") != "running",
                       READY_TIMEOUT_S, interval_s=0.5, message="the broker container's /readyz")
            assert inspect(container.name, "{{.State.Status}}") == "running", container.logs()[-4000:]
            yield container
        except BaseException:
            print(f"--- {container.name} log ---\n{container.logs()[-6000:]}")
            raise
        container.stop_cleanly()
    finally:
        docker("rm", "-f", container.name, check=False)
        docker("volume", "rm", "-f", volume, check=False)


def test_the_broker_runs_as_10001_on_a_read_only_root_and_writes_to_data(broker: Container) -> None:
    assert broker.exec("ps", "-o", "uid=,comm=", "-p", "1").stdout.split() == ["10001", "goqueue-broker"]
    denied = broker.exec("sh", "-c", "touch /usr/local/goqueue-was-here", check=False)
    assert denied.returncode != 0, "the root file system is writable"
    assert "Read-only file system" in denied.stderr
    assert broker.exec("sh", "-c", "find /data -type f | head -1").stdout.strip(), "the broker wrote nothing to /data"


def test_the_broker_answers_readyz_inside_and_on_its_container_ip(broker: Container) -> None:
    assert readyz_inside(broker).startswith("200 "), readyz_inside(broker)
    # Where a kubelet probes it: the container's own address, not loopback.
    ip = inspect(broker.name, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    assert ip, "the broker container has no IP address on the docker bridge"
    response = httpx.get(f"http://{ip}:8080/readyz", timeout=5)
    assert response.status_code == 200, response.text
    # The image's own HEALTHCHECK (the charts' readiness probe) passes on the read-only root.
    health = wait_until(lambda: inspect(broker.name, "{{.State.Health.Status}}") == "healthy", 60, interval_s=1,
                        message="docker's HEALTHCHECK to report healthy")
    assert health


def test_goqueue_cli_creates_produces_and_consumes_inside_the_broker(broker: Container) -> None:
    topic, group = f"images-{secrets.token_hex(3)}", f"images-group-{secrets.token_hex(3)}"
    created = broker.exec("goqueue-cli", "topic", "create", "--name", topic, "--partitions", "2", check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    values = [f"value-{i}" for i in range(3)]
    for i, value in enumerate(values):
        produced = broker.exec("goqueue-cli", "produce", "--topic", topic, "--key", f"k{i}", "--value", value,
                               check=False)
        assert produced.returncode == 0, produced.stdout + produced.stderr
        assert f"produced to {topic}" in produced.stdout
    consumed = broker.exec("goqueue-cli", "-o", "json", "consume", "--topic", topic, "--group", group,
                           "--from-beginning", "--max", "3", "--ack", "--timeout", "10", check=False)
    assert consumed.returncode == 0, consumed.stdout + consumed.stderr
    records = [json.loads(line) for line in consumed.stdout.splitlines() if line.strip()]
    assert sorted(r["value"] for r in records) == values, consumed.stdout
    described = broker.exec("goqueue-cli", "-o", "json", "topic", "describe", topic, check=False)
    assert described.returncode == 0, described.stdout + described.stderr
    assert json.loads(described.stdout)["partitions"] == 2


def test_goqueue_admin_runs_inside_the_broker(broker: Container) -> None:
    helped = broker.exec("goqueue-admin", "--help", check=False)
    assert helped.returncode == 0, helped.stderr
    assert "cluster" in helped.stdout
    health = broker.exec("goqueue-admin", "-o", "json", "health", check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    assert json.loads(health.stdout)["status"] == "healthy"
    status = broker.exec("goqueue-admin", "cluster", "status", check=False)
    assert status.returncode == 0, status.stdout + status.stderr


# -- the operator container ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorContainer(Container):
    url: str
    namespace: str


def free_loopback_address(port: int) -> str:
    """A 127.x address whose `port` is free: the operator binds it on the host's network, beside anything else."""
    rng = random.SystemRandom()
    for _ in range(50):
        address = f"127.{rng.randrange(100, 250)}.{rng.randrange(1, 255)}.{rng.randrange(2, 255)}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return address
    raise AssertionError(f"no free loopback address for port {port}")


def healthz(url: str) -> int:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code
    except httpx.HTTPError:
        return 0


def crds_established(kubectl: Kubectl) -> bool:
    crds = json.loads(kubectl("get", "crd", *CRDS, "-o", "json", check=False) or "{}").get("items", [])
    return len(crds) == len(CRDS) and all(
        any(c["type"] == "Established" and c["status"] == "True" for c in (crd.get("status") or {}).get("conditions")
            or []) for crd in crds)


@pytest.fixture(scope="module")
def operator(images: Images, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[OperatorContainer]:
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=goqueue-tests", "-f", str(REPO / "crds"))
    # Polled rather than `kubectl wait`, which fails outright on a CRD whose status the API server has not yet set.
    wait_until(lambda: crds_established(kubectl), 60, interval_s=0.5, message="the GoQueue CRDs to be Established")
    run = secrets.token_hex(4)
    namespace = f"t-images-{run}"
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, "goqueue.dev/test=true")
    # The admin credentials with the certificates inline (the control plane's refer to files under its state dir),
    # readable by the image's user only.
    kubeconfig = tmp_path_factory.mktemp("operator-image") / "kubeconfig"
    kubeconfig.write_text(kubectl("config", "view", "--raw", "--flatten"))
    try:
        os.chown(kubeconfig, 10001, 10001)
        kubeconfig.chmod(0o600)
    except PermissionError:  # not root: the tests' own file, readable so the container's user can load it
        kubeconfig.chmod(0o644)
    address = free_loopback_address(OPERATOR_PORT)
    container = OperatorContainer(f"goqueue-test-operator-{run}", f"http://{address}:{OPERATOR_PORT}", namespace)
    try:
        docker("run", "-d", "--name", container.name, *HARDENED, "--network", "host",
               "-v", f"{kubeconfig}:/etc/goqueue/kubeconfig:ro", "-e", "KUBECONFIG=/etc/goqueue/kubeconfig",
               "-e", f"GOQUEUE_OPERATOR_NAMESPACES={namespace}", "-e", "GOQUEUE_OPERATOR_STANDALONE=true",
               "-e", f"GOQUEUE_OPERATOR_METRICS_HOST={address}", images.tag("operator"))
        try:
            wait_until(lambda: healthz(container.url) or inspect(container.name, "{{.State.Status}}") != "running",
                       READY_TIMEOUT_S, interval_s=0.5, message=f"the operator container's {container.url}/healthz")
            assert inspect(container.name, "{{.State.Status}}") == "running", container.logs()[-4000:]
            yield container
            # The namespace goes while the operator runs: it releases its finalizers on what it reconciled.
            kubectl("delete", "namespace", namespace, "--wait", "--timeout=90s", timeout_s=120)
        except BaseException:
            print(f"--- {container.name} log ---\n{container.logs()[-6000:]}")
            raise
        container.stop_cleanly()
    finally:
        docker("rm", "-f", container.name, check=False)
        kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False)
        kubeconfig.unlink()


def test_the_operator_answers_healthz_and_metrics_on_8081(operator: OperatorContainer) -> None:
    ids = operator.exec("grep", "-E", "^(Uid|Gid):", "/proc/1/status").stdout.split()  # no procps in this image
    assert ids == ["Uid:", *["10001"] * 4, "Gid:", *["10001"] * 4], ids
    response = httpx.get(f"{operator.url}/healthz", timeout=5)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}
    metrics = httpx.get(f"{operator.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert "goqueue_operator_" in metrics.text
    # Inside the container too (the chart's liveness probe's view of the same server).
    inside = operator.exec("python", "-c", "import urllib.request as u; "
                           f"print(u.urlopen('{operator.url}/healthz', timeout=2).status)")
    assert inside.stdout.strip() == "200"


def test_the_operator_reconciles_through_the_api_server(operator: OperatorContainer, kubectl: Kubectl) -> None:
    """Not only alive: it watches its namespace and writes status (a topic whose cluster does not exist)."""
    topic = {"apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueTopic",
             "metadata": {"name": "orphan", "namespace": operator.namespace},
             "spec": {"clusterRef": {"name": "no-such-cluster"}, "partitions": 1, "replicationFactor": 1}}
    kubectl("apply", "-f", "-", input_text=json.dumps(topic))

    def ready_condition() -> dict[str, str] | None:
        body = json.loads(kubectl("get", "goqueuetopic", "orphan", "-n", operator.namespace, "-o", "json"))
        conditions = (body.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == "Ready"), None)

    condition = wait_until(ready_condition, 60, interval_s=0.5, message="the operator's Ready condition")
    assert condition["status"] == "False"
    assert condition["reason"] == "ClusterNotFound", condition
