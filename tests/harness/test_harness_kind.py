"""kind and Docker as `make up` / `make down` use them, and what they say when something is wrong.

* Faults: no permission on the Docker socket, a daemon that does not start, a node-image build that fails half-way
  (the cache is not poisoned: no tag, no leftover container, the next run builds), `make down` with nothing up —
  each one clear line, nothing left running. Faults are real programs standing in for `docker` / `dockerd` on PATH
  (a fake that answers like the real one), or the real docker with one subcommand made to fail.
* `make up` on kind twice (same pods: idempotent), the printed commands work through `kubectl exec`, then
  `make down` removes the cluster.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from goqueue_harness.binaries import BinDir
from goqueue_harness.docker import ensure_docker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def harness(*args: str, env: dict[str, str] | None = None, state: Path | None = None,
            timeout_s: float = 900) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "goqueue_harness", *(["--state-dir", str(state)] if state else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "harness"), **(env or {})})


def fake_bin(directory: Path, name: str, script: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/bash\n{script}\n")
    path.chmod(0o755)


def only_fakes_path(fakes: Path) -> str:
    """PATH with the fakes first: every test provides both `docker` and `dockerd`, so the real ones are never run."""
    assert (fakes / "docker").exists()
    assert (fakes / "dockerd").exists()
    return f"{fakes}:{os.environ['PATH']}"


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"not one line:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_no_permission_on_the_docker_socket_is_one_line(tmp_path: Path) -> None:
    fakes = tmp_path / "bin"
    fake_bin(fakes, "docker", 'echo "permission denied while trying to connect to the Docker daemon socket at '
                              'unix:///var/run/docker.sock: connect: permission denied" >&2; exit 1')
    fake_bin(fakes, "dockerd", f"touch {tmp_path}/dockerd-ran; sleep 600")
    proc = harness("make-up", "--backend", "kind", env={"PATH": only_fakes_path(fakes),
                                                        "GOQUEUE_DOCKER_STATE": str(tmp_path / "docker")})
    line = one_line_error(proc)
    assert "no permission to use the Docker daemon" in line, line
    assert "docker group" in line, line
    assert not (tmp_path / "dockerd-ran").exists(), "a daemon was started although one answers (and refuses us)"


def test_a_docker_daemon_that_does_not_start_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    fakes = tmp_path / "bin"
    fake_bin(fakes, "docker", 'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. '
                              'Is the docker daemon running?" >&2; exit 1')
    fake_bin(fakes, "dockerd", 'echo "starting"; echo "failed to start daemon: error initializing graphdriver: '
                               'driver not supported"; exit 1')
    proc = harness("make-up", "--backend", "kind", env={"PATH": only_fakes_path(fakes),
                                                        "GOQUEUE_DOCKER_STATE": str(tmp_path / "docker")})
    line = one_line_error(proc)
    assert "dockerd did not start" in line, line
    assert "error initializing graphdriver" in line, line
    # A daemon that hangs instead of exiting is stopped too (its whole process group).
    fake_bin(fakes, "dockerd", "sleep 600 & wait")
    proc = harness("make-up", "--backend", "kind",
                   env={"PATH": only_fakes_path(fakes), "GOQUEUE_DOCKER_STATE": str(tmp_path / "docker"),
                        "GOQUEUE_DOCKER_START_TIMEOUT": "3"})
    assert "dockerd did not start" in one_line_error(proc)
    leftover = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, text=True, check=False).stdout
    assert leftover.strip() == "", f"the hung daemon was left running: {leftover}"


def test_make_down_with_nothing_up_says_so(tmp_path: Path) -> None:
    proc = harness("make-down", state=tmp_path / "cp",
                   env={"GOQUEUE_KIND_CLUSTER": f"absent-{secrets.token_hex(3)}",
                        "GOQUEUE_DOCKER_STATE": str(tmp_path / "docker")})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(re.fullmatch(r"make down: no kind cluster absent-\w+( \(no Docker daemon runs\))?", line)
               for line in lines), proc.stdout
    assert "make down: no Docker daemon of ours to stop" in lines
    assert "make down: no local control plane" in lines


@pytest.mark.timeout(1200)
def test_a_node_image_build_failing_half_way_leaves_no_image_and_the_next_run_builds(tmp_path: Path) -> None:
    ensure_docker()
    repo = f"goqueue-test/kind-node-{secrets.token_hex(3)}"
    real_docker = subprocess.run(["bash", "-c", "command -v docker"], capture_output=True, text=True,
                                 check=True).stdout.strip()
    fakes = tmp_path / "bin"
    # The real docker, except that the last step (commit) fails: the build got as far as it can.
    fake_bin(fakes, "docker", f'if [ "$1" = commit ]; then echo "commit: no space left on device" >&2; exit 1; fi\n'
                              f'exec {real_docker} "$@"')
    env = {**os.environ, "GOQUEUE_KIND_NODE_IMAGE_REPO": repo, "PATH": f"{fakes}:{os.environ['PATH']}"}
    script = str(REPO / "harness" / "kind" / "build_node_image.sh")

    def images() -> list[str]:
        return subprocess.run([real_docker, "images", "--format", "{{.Repository}}:{{.Tag}}", repo],
                              capture_output=True, text=True, check=True).stdout.split()

    def build_containers() -> str:
        return subprocess.run([real_docker, "ps", "-a", "--filter", "name=goqueue-node-build", "--format",
                               "{{.Names}}"], capture_output=True, text=True, check=True).stdout.strip()

    try:
        failed = subprocess.run(["bash", script], capture_output=True, text=True, timeout=1100, check=False, env=env)
        assert failed.returncode != 0, failed.stderr[-2000:]
        assert "no space left on device" in failed.stderr
        assert images() == [], "a failed build left a tag behind: the next run would reuse a broken image"
        assert build_containers() == "", "a failed build left its build container"

        env["PATH"] = os.environ["PATH"]
        built = subprocess.run(["bash", script], capture_output=True, text=True, timeout=1100, check=False, env=env)
        assert built.returncode == 0, built.stderr[-3000:]
        tag = built.stdout.strip().splitlines()[-1]
        assert tag.startswith(f"{repo}:")
        assert images() == [tag]
        imported = subprocess.run([real_docker, "run", "--rm", "--entrypoint", "cat", tag, "/kind/version"],
                                  capture_output=True, text=True, timeout=120, check=True).stdout
        assert imported.startswith("v1.")
    finally:
        for image in images():
            subprocess.run([real_docker, "rmi", "-f", image], capture_output=True, check=False)


@pytest.mark.timeout(1800)
def test_make_up_on_kind_twice_then_make_down(k8s_binaries: BinDir, tmp_path: Path) -> None:
    name = f"gq-up-{secrets.token_hex(2)}"
    env = {"GOQUEUE_KIND_CLUSTER": name}
    state = tmp_path / "cp"  # the local control plane make down also stops: a state dir of its own
    kubeconfig = Path.home() / ".local" / "state" / "goqueue" / "kind" / name / "kubeconfig"
    kubectl = [str(k8s_binaries.kubectl), f"--kubeconfig={kubeconfig}"]

    def pods() -> dict[str, str]:
        out = subprocess.run([*kubectl, "get", "pods", "-n", "goqueue", "-o", "json"], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        return {p["metadata"]["name"]: p["metadata"]["uid"] for p in json.loads(out)["items"]}

    try:
        first = harness("make-up", "--backend", "kind", env=env, state=state)
        assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
        assert "all Ready" in first.stdout, first.stdout
        assert f"kind cluster {name}" in first.stdout, first.stdout
        # The printed next steps, as printed (kubectl exec into a broker container).
        for command in re.findall(r"^  (kubectl exec .*)$", first.stdout, flags=re.MULTILINE):
            proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False,
                                  env={**os.environ, "KUBECONFIG": str(kubeconfig),
                                       "PATH": f"{k8s_binaries.path}:{os.environ['PATH']}"})
            assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
        before = pods()
        assert sorted(before) == ["goqueue-0", "goqueue-1", "goqueue-2"], before
        again = harness("make-up", "--backend", "kind", env=env, state=state)
        assert again.returncode == 0, again.stderr
        assert f"kind cluster {name} reused" in again.stderr
        assert pods() == before, "a second make up restarted brokers"
    finally:
        down = harness("make-down", env=env, state=state)
    assert down.returncode == 0, down.stderr
    assert f"make down: kind cluster {name} deleted" in down.stdout, down.stdout
    ensure_docker()  # make down may have stopped the daemon the harness started; later tests need one
    clusters = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                              check=True).stdout.split()
    assert f"{name}-control-plane" not in clusters
