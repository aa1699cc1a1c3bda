"""The consumer groups a client is a member of, and leaving them when it stops — as a Kafka consumer leaves its
group on close — so an offset reset right after a consumer exits is not refused for a member that is gone.

A client is a member of a group once it joined it (ordered) or consumed from it with a consumer id (shared), until
it leaves. `close()` of either client leaves every group it is still in; `with` blocks call it on a normal exit,
on an error and on Ctrl-C (KeyboardInterrupt unwinds them). Two ways out skip `close()`:

* the interpreter ends with a client still open: an atexit hook leaves for it;
* SIGTERM: by default it ends Python at once, with no unwinding and no atexit. So when the first membership is
  taken on the main thread and SIGTERM still has its default action, a hook is installed that leaves every open
  client's groups and then ends the process by SIGTERM as before. A program with its own SIGTERM handler keeps
  it (the CLIs install one that unwinds, leaving through `close()`); a consumer that exits none of these ways
  (SIGKILL, power loss) is expired by the coordinator after the group's session timeout.

The hooks leave through `leave_now`, which each client gives: a short call on connections of its own, since a
signal handler may interrupt the client's own connection pool mid-request. Leaving is best-effort: a broker that
cannot be reached then leaves the member to expire.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

LEAVE_TIMEOUT_S = 2.0  # per leave from a hook: SIGTERM's grace period (30 s in Kubernetes) must cover them all

LeaveNow = Callable[[str, str], None]


class Memberships:
    def __init__(self, leave_now: LeaveNow, errors: tuple[type[BaseException], ...]) -> None:
        """`leave_now(group, member_id)` leaves on connections of its own, raising one of `errors` on failure."""
        self._leave_now = leave_now
        self._errors = errors
        self._members: dict[tuple[str, str], None] = {}  # insertion-ordered set
        _open.add(self)

    def add(self, group: str, member_id: str) -> None:
        self._members[(group, member_id)] = None
        _install_sigterm_hook()

    def discard(self, group: str, member_id: str) -> None:
        self._members.pop((group, member_id), None)

    def snapshot(self) -> list[tuple[str, str]]:
        return list(self._members)

    def leave_now(self) -> None:
        for group, member_id in self.snapshot():
            try:
                self._leave_now(group, member_id)
            except self._errors as exc:
                log.info("group.leave_failed", extra={"group": group, "member": member_id, "error": str(exc)})
            self.discard(group, member_id)

    def close(self) -> None:
        """The client closed: nothing left for the hooks to do."""
        self._members.clear()
        _open.discard(self)


_open: weakref.WeakSet[Memberships] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hook_installed = False


def leave_all_now() -> None:
    """Every open client leaves its groups (the atexit and SIGTERM hooks)."""
    for memberships in list(_open):
        memberships.leave_now()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    leave_all_now()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # end as SIGTERM would have: same status for whoever waits on the process


def _install_sigterm_hook() -> None:
    global _hook_installed  # noqa: PLW0603 - one hook per process
    if _hook_installed or threading.current_thread() is not threading.main_thread():
        return
    with _hook_lock:
        if _hook_installed:
            return
        _hook_installed = True
        with contextlib.suppress(ValueError):  # an embedded interpreter may refuse signals
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)


atexit.register(leave_all_now)
