"""What the `unit` marker promises, enforced: a unit test (its fixtures included) opens no socket and starts no
process.

Why: a unit test is pure code and storage on temp files (STYLE.md §8). One that binds a port or spawns a binary
races other tests for ports, depends on tools being installed, and is slow or flaky on a loaded CI machine; such a
test belongs in `integration`. The promise was only a docstring, and twenty "unit" tests had started real Raft
nodes on probed ports (issue 17).

How: a PEP 578 audit hook, not monkeypatching, so every path through CPython's socket and process APIs is seen
whoever calls them (httpx, grpc's Python side, `subprocess`, `os.system`, `os.fork`, asyncio's child watcher).
`socket.socketpair()` is allowed: asyncio's event loop wakes itself with one, and it reaches no network. Threads
that were already running when the guard was armed are exempt (an integration fixture's background thread in the
same session is not the unit test's doing); threads the unit test starts are not.

Audit hooks cannot be removed once added, so one hook is installed for the session and consults `_armed`.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# audit event -> what the test did, in the failure message
FORBIDDEN = {
    "socket.bind": "bound a socket",
    "socket.connect": "connected a socket",
    "socket.sendto": "sent a datagram",
    "socket.sendmsg": "sent on a socket",
    "socket.getaddrinfo": "resolved a host name",
    "socket.gethostbyname": "resolved a host name",
    "subprocess.Popen": "started a subprocess",
    "os.system": "ran a shell command",
    "os.posix_spawn": "spawned a process",
    "os.spawn": "spawned a process",
    "os.exec": "exec'd a program",
    "os.fork": "forked",
    "os.forkpty": "forked",
}


class UnitIsolationError(RuntimeError):
    """A `unit` test opened a socket or started a process; move it to `integration` or give it a double."""


@dataclass
class Armed:
    exempt: frozenset[threading.Thread]
    violations: list[str] = field(default_factory=list)


_armed: Armed | None = None
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    armed = _armed
    if armed is None or event not in FORBIDDEN:
        return
    if threading.current_thread() in armed.exempt:
        return
    stack = "".join(traceback.format_stack(limit=12)[:-1])
    what = f"{FORBIDDEN[event]} ({event}{_describe(args)})"
    armed.violations.append(f"{what}\n{stack}")
    raise UnitIsolationError(f"a unit test {what}: unit tests use no network and no subprocess "
                             "(mark it `integration`, or use an in-memory double)")


def _describe(args: tuple[Any, ...]) -> str:
    """The address, host or command; not the socket object or the environment."""
    shown = [repr(a) for a in args if a is not None and not hasattr(a, "fileno") and not isinstance(a, dict)]
    return f": {', '.join(shown)}"[:200] if shown else ""


@contextmanager
def unit_isolation() -> Iterator[list[str]]:
    """While inside, a forbidden call from this thread (or one started inside) raises `UnitIsolationError`; the
    yielded list collects every violation, so a test that swallowed the error still fails afterwards."""
    global _armed, _installed  # noqa: PLW0603 - one audit hook per interpreter, armed per test
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    outer = _armed
    current = threading.current_thread()
    _armed = Armed(exempt=frozenset(t for t in threading.enumerate() if t is not current))
    try:
        yield _armed.violations
    finally:
        _armed = outer
