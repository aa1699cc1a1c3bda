"""A spinner with a line of status on stderr while a command waits: for people at a terminal, never for scripts.

It appears only when the wait has lasted `SHOW_AFTER_S` (a quick answer prints nothing extra), only when stderr is a
terminal, and never with `-o json`/`-o yaml`. It is transient: gone when the wait ends, so what stays on screen
is the command's real output. Records printed meanwhile go above it when stdout is the same terminal; when stdout
is a pipe it is left alone, so the spinner can never end up in a file.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner

SHOW_AFTER_S = 1.0


class WaitDisplay:
    """`with WaitDisplay(enabled, "waiting for …") as wait: … wait.update("…")`."""

    def __init__(self, enabled: bool, text: str, console: Console | None = None,
                 show_after_s: float = SHOW_AFTER_S) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.enabled = enabled and self.console.is_terminal
        self._lock = threading.Lock()
        self._spinner = Spinner("dots", text)
        self._live: Live | None = None
        self._timer = threading.Timer(show_after_s, self.show) if self.enabled else None

    def __enter__(self) -> WaitDisplay:
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()
        return self

    def show(self) -> None:
        """Start the spinner now (the timer calls this once the wait has lasted long enough)."""
        with self._lock:
            if self._live is None and self.enabled:
                self._live = Live(self._spinner, console=self.console, transient=True, refresh_per_second=12.5,
                                  redirect_stdout=sys.stdout.isatty(), redirect_stderr=False)  # a pipe keeps its bytes
                self._live.start()

    @property
    def shown(self) -> bool:
        return self._live is not None

    def update(self, text: str) -> None:
        with self._lock:
            self._spinner.update(text=text)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self.enabled = False
            if self._live is not None:
                self._live.stop()
