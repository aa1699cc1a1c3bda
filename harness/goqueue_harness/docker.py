"""The Docker daemon that kind and the image builds use: the one already running, or one we start and stop.

Why here: `make up`, `make test` and the e2e kind backend need a Docker daemon; on a laptop it runs already (and is
left alone), on these CI machines nothing starts it (no systemd). When none answers and `dockerd` is installed and
we are root, we start one ourselves, with two adaptations this machine needs (docs/KIND.md):

* **Capabilities.** When the capability bounding set lacks a capability (CAP_SYS_RESOURCE here), `--privileged`
  containers fail in runc. dockerd then gets `harness/kind/runc-capbnd` as its default runtime, which removes the
  missing capabilities before runc runs. On a machine with the full set the wrapper is not installed.
* **Firewall.** dockerd sets iptables' FORWARD policy to DROP, which cuts every other bridge on the machine (the
  network-partition test's namespaces). The policy is put back as it was once the daemon is up.

`stop_docker` stops only a daemon we started (its pid file); a user's daemon is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from goqueue_harness.processes import (
    PidRecord,
    pid_file_alive,
    process_start_ticks,
    read_pid_file,
    stop_daemon,
)

WRAPPER_SOURCE = Path(__file__).resolve().parents[1] / "kind" / "runc-capbnd"
SOCKET = Path("/var/run/docker.sock")
START_TIMEOUT_S = 60.0


class DockerUnavailable(RuntimeError):
    """No Docker daemon answers and none can be started; the message is one line saying why and what to do."""


def docker_state_dir() -> Path:
    return Path(os.environ.get("GOQUEUE_DOCKER_STATE", Path.home() / ".local" / "state" / "goqueue" / "docker"))


def docker_info() -> tuple[bool, str]:
    """(answers, last line of `docker info` when it does not)."""
    if shutil.which("docker") is None:
        return False, "the docker command is not installed"
    try:
        proc = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return False, "`docker info` did not answer within 30 s"
    if proc.returncode == 0:
        return True, proc.stdout.strip()
    return False, (proc.stderr.strip().splitlines() or ["no output"])[-1]


def missing_capabilities() -> bool:
    """True when the bounding set lacks a capability the kernel has (privileged containers need the wrapper)."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16) != (1 << (last + 1)) - 1
    return False


def _forward_policy() -> str | None:
    if shutil.which("iptables") is None:
        return None
    proc = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def _install_wrapper(state: Path) -> Path:
    real = shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin")
    if real is None:
        raise DockerUnavailable("runc is not installed (apt-get install docker.io brings it)")
    wrapper = state / "runc-capbnd"
    wrapper.write_text(WRAPPER_SOURCE.read_text().replace("@REAL_RUNC@", real))
    wrapper.chmod(0o755)
    return wrapper


def _spawn_detached(argv: list[str], *, pid_file: Path, log_file: Path) -> PidRecord:
    """Start the daemon in a session of its own that no Python process waits for: it outlives `make up` and the
    test session that started it (a child left running would warn at their exit), and `stop_docker` finds it by
    its pid file like the harness's other daemons."""
    launched = subprocess.run(["bash", "-c", 'setsid "$@" </dev/null >>"$GOQUEUE_DOCKERD_LOG" 2>&1 & echo $!', "_",
                               *argv], env={**os.environ, "GOQUEUE_DOCKERD_LOG": str(log_file)},
                              capture_output=True, text=True, timeout=30, check=True)
    pid = int(launched.stdout.strip())
    record = PidRecord(pid, process_start_ticks(pid) or -1)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{record.pid} {record.start_ticks}\n")
    tmp.replace(pid_file)
    return record


def ensure_docker() -> str:
    """Return the server version of a Docker daemon that answers, starting ours when none does."""
    answers, detail = docker_info()
    if answers:
        return detail
    if "permission denied" in detail.lower():
        raise DockerUnavailable(f"no permission to use the Docker daemon ({detail}); add yourself to the docker "
                                "group or run as root")
    dockerd = shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/usr/bin")
    if dockerd is None or shutil.which("docker") is None:
        raise DockerUnavailable("Docker is not installed (Debian: apt-get install docker.io); "
                                f"`docker info` said: {detail}")
    if os.geteuid() != 0:
        raise DockerUnavailable(f"the Docker daemon is not running and only root can start it ({detail})")
    state = docker_state_dir()
    state.mkdir(parents=True, exist_ok=True)
    pid_file, log_file = state / "dockerd.pid", state / "dockerd.log"
    if not pid_file_alive(pid_file):
        argv = [dockerd, f"--pidfile={state / 'dockerd.docker-pid'}"]
        if missing_capabilities():
            argv += [f"--add-runtime=goqueue-runc={_install_wrapper(state)}", "--default-runtime=goqueue-runc"]
        policy = _forward_policy()
        log_file.write_bytes(b"")
        record = _spawn_detached(argv, pid_file=pid_file, log_file=log_file)
        deadline = time.monotonic() + float(os.environ.get("GOQUEUE_DOCKER_START_TIMEOUT", START_TIMEOUT_S))
        while not (answers := docker_info()[0]):
            if not pid_file_alive(pid_file) or time.monotonic() > deadline:
                stop_daemon(pid_file)
                last = (log_file.read_text(errors="replace").strip().splitlines() or ["(empty log)"])[-1]
                raise DockerUnavailable(f"dockerd did not start (pid {record.pid}, log {log_file}): {last}")
            time.sleep(0.5)
        if policy is not None and _forward_policy() != policy:
            subprocess.run(["iptables", "-P", "FORWARD", policy], check=True)
    answers, detail = docker_info()
    if not answers:
        raise DockerUnavailable(f"dockerd runs (pid file {pid_file}) but `docker info` fails: {detail}")
    return detail


def docker_started_by_us() -> bool:
    return pid_file_alive(docker_state_dir() / "dockerd.pid")


def running_containers() -> list[str]:
    proc = subprocess.run(["docker", "ps", "--format", "{{.Names}}"], capture_output=True, text=True, timeout=60,
                          check=False)
    return proc.stdout.split() if proc.returncode == 0 else []


def stop_docker(grace_s: float = 30.0) -> bool:
    """Stop the daemon `ensure_docker` started (containers stop with it); False when there was none."""
    pid_file = docker_state_dir() / "dockerd.pid"
    if read_pid_file(pid_file) is None or not pid_file_alive(pid_file):
        pid_file.unlink(missing_ok=True)
        return False
    stop_daemon(pid_file, grace_s=grace_s)
    return True
