"""`make up` / `make down` as a user runs them (`python -m goqueue_harness up`, `demo`, `down`), in a state
directory of its own: the operator chart and the sample GoQueueCluster come up Ready, the printed broker answers a
produce and a consume, a second `make up` changes nothing, and `down` leaves nothing running."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from goqueue_harness.binaries import BinDir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def harness(state_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """What `make up` / `make down` run (the Makefile's PYTHONPATH=harness included)."""
    proc = subprocess.run([sys.executable, "-m", "goqueue_harness", "--state-dir", str(state_dir), *args],
                          capture_output=True, text=True, timeout=420, check=False, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO / "harness")})
    if check:
        assert proc.returncode == 0, f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def cli(state: Path, *args: str) -> str:
    """A CLI as the demo's next steps run it: as the operator's principal (anonymous access is off)."""
    tool = Path(sys.executable).with_name(args[0])
    env = {**os.environ, "GOQUEUE_USER": "goqueue-operator", "GOQUEUE_PASSWORD_FILE": str(state / "operator.password")}
    proc = subprocess.run([str(tool), *args[1:]], capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.mark.timeout(900)
def test_make_up_twice_then_make_down(k8s_binaries: BinDir, tmp_path: Path) -> None:
    state = tmp_path / "cp"
    try:
        harness(state, "up")
        first = harness(state, "demo")
        assert "all Ready" in first.stdout, first.stdout
        server = re.search(r"goqueue-cli --server (http://\S+) produce", first.stdout)
        assert server is not None, first.stdout
        kubectl = [str(k8s_binaries.kubectl), f"--kubeconfig={state / 'kubeconfig'}"]

        def pods() -> dict[str, str]:
            out = subprocess.run([*kubectl, "get", "pods", "-n", "goqueue", "-o", "json"], capture_output=True,
                                 text=True, timeout=60, check=True).stdout
            return {p["metadata"]["name"]: p["metadata"]["uid"] for p in json.loads(out)["items"]}

        listing = subprocess.run([*kubectl, "get", "goqueue", "-n", "goqueue"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
        assert re.search(r"goqueuecluster\.goqueue\.io/goqueue\s+3\s+3\s+\S+\s+Running", listing), listing
        assert re.search(r"goqueuetopic\.goqueue\.io/my-topic\s+goqueue\s+8\s+3\s+True", listing), listing

        assert "produced to my-topic" in cli(state, "goqueue-cli", "--server", server[1], "produce", "--topic",
                                             "my-topic", "--key", "k", "--value", "hello from make up")
        consumed = cli(state, "goqueue-cli", "--server", server[1], "consume", "--topic", "my-topic", "--group",
                       "my-group", "--from-beginning", "--max", "1", "--ack")
        assert "hello from make up" in consumed

        before = pods()
        assert sorted(before) == ["goqueue-0", "goqueue-1", "goqueue-2"]
        harness(state, "up")
        again = harness(state, "demo")
        assert "all Ready" in again.stdout
        assert pods() == before, "a second make up restarted brokers"
    finally:
        harness(state, "down", check=False)
    status = harness(state, "status", check=False)
    assert status.returncode == 1
    assert json.loads(status.stdout)["ready"] is False
    leftover = subprocess.run(["pgrep", "-f", str(state)], capture_output=True, text=True, check=False).stdout
    assert leftover.strip() == "", f"processes left running: {leftover}"
