"""Starting and stopping the process-kubelet as a background daemon.

Why a separate process: ``make up`` returns to the shell while pods keep
running, and a pytest session must not host long-lived pod processes inside its
own event loop. The daemon is ``python -m goqueue_harness kubelet`` under the
same interpreter (so ``goqueue-broker`` resolves from the same environment);
``stop_kubelet`` SIGTERMs it (it stops its pods gracefully) and then kills any
container process group a crashed kubelet left behind, found by pid files.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from goqueue_harness import processes
from goqueue_harness.controlplane import ControlPlane
from goqueue_harness.kubelet.dns import find_nss_wrapper

KUBELET = "kubelet"


def kubelet_dir(cp: ControlPlane) -> Path:
    return cp.state_dir / "kubelet"


def kubelet_running(cp: ControlPlane) -> bool:
    return processes.pid_file_alive(cp.pid_file(KUBELET))


def start_kubelet(cp: ControlPlane, *, resize_mode: str = "online", timeout_s: float = 30.0) -> None:
    """Start the daemon unless it runs; return when its Node is registered."""
    if kubelet_running(cp):
        return
    find_nss_wrapper()  # fail here, loudly, rather than in every pod
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # console scripts of this environment first
    harness_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (harness_root, env.get("PYTHONPATH", "")) if p)
    marker = kubelet_dir(cp) / "ready"
    marker.unlink(missing_ok=True)
    record = processes.spawn_daemon(
        [sys.executable, "-m", "goqueue_harness", "--state-dir", str(cp.state_dir), "kubelet",
         "--resize-mode", resize_mode],
        pid_file=cp.pid_file(KUBELET), log_file=cp.log_file(KUBELET), env=env,
    )
    deadline = time.monotonic() + timeout_s
    while not marker.is_file():
        if not processes.is_alive(record):
            raise RuntimeError(f"kubelet exited during start; see {cp.log_file(KUBELET)}:\n"
                               + cp.log_file(KUBELET).read_text(errors="replace")[-3000:])
        if time.monotonic() > deadline:
            raise RuntimeError(f"kubelet not ready after {timeout_s}s; see {cp.log_file(KUBELET)}")
        time.sleep(0.1)


def stop_kubelet(cp: ControlPlane) -> None:
    processes.stop_daemon(cp.pid_file(KUBELET), grace_s=20.0)
    for pid_file in (kubelet_dir(cp) / "containers").glob("*.pid"):
        processes.stop_daemon(pid_file, grace_s=2.0)
    (kubelet_dir(cp) / "ready").unlink(missing_ok=True)
