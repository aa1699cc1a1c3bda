"""Long-running background processes tracked by pid files.

Why pid files and process groups: ``python -m goqueue_harness down`` runs in a
different process from the ``up`` that started etcd, the API server, the
controller manager and the kubelet, so it must find them on disk. Each daemon
leads its own session (process group), so stopping the group also stops anything
it spawned. A pid file records the process's start time from ``/proc`` too, so a
recycled pid is never mistaken for our process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Popen objects of daemons this process started, so it can reap them (a zombie
# still answers kill(pid, 0) and would look alive).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: the pid and its ``/proc`` start time (clock ticks)."""

    pid: int
    start_ticks: int


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``, or None if the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        pid_s, ticks_s = path.read_text().split()
    except (OSError, ValueError):
        return None
    return PidRecord(int(pid_s), int(ticks_s))


def is_alive(record: PidRecord) -> bool:
    _reap(record.pid)
    return process_start_ticks(record.pid) == record.start_ticks


def pid_file_alive(path: Path) -> bool:
    record = read_pid_file(path)
    return record is not None and is_alive(record)


def spawn_daemon(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> PidRecord:
    """Start ``argv`` in a new session with output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True, close_fds=True,
        )
    _children[proc.pid] = proc
    ticks = process_start_ticks(proc.pid)
    record = PidRecord(proc.pid, ticks if ticks is not None else -1)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{record.pid} {record.start_ticks}\n")
    tmp.replace(pid_file)
    return record


def exited(record: PidRecord) -> int | None:
    """The exit code if this process started the daemon and it has exited."""
    proc = _children.get(record.pid)
    return None if proc is None else proc.poll()


def stop_daemon(pid_file: Path, *, grace_s: float = 10.0) -> None:
    """SIGTERM the daemon's process group, SIGKILL it after ``grace_s``; remove the pid file."""
    record = read_pid_file(pid_file)
    if record is not None and is_alive(record):
        kill_group(record.pid, grace_s=grace_s)
    pid_file.unlink(missing_ok=True)


def kill_group(pgid: int, *, grace_s: float) -> None:
    """Terminate process group ``pgid`` gracefully, then forcefully; wait until it is empty."""
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_group_gone(pgid, grace_s):
        _signal_group(pgid, signal.SIGKILL)
        if not _wait_group_gone(pgid, 10.0):
            raise RuntimeError(f"process group {pgid} survived SIGKILL")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(pgid)
        if not _group_members(pgid):
            proc = _children.pop(pgid, None)
            if proc is not None:
                proc.wait()  # a zombie at most by now: reap it so Popen never warns
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None:
        proc.poll()
