"""Every scenario fails when the operator or a broker logged an unexpected error while it ran.

What is unexpected, by role:
* operator — a traceback, a 403/Forbidden (a missing RBAC verb: the rule of tests/integration/operator), a
  `critical` line, or a handler that "failed permanently". kopf's "failed temporarily" lines are `error`
  severity but are how the operator waits (for a Ready broker, for a restarting pod): they are not problems.
* broker — a traceback, or a line at level `error` or `critical`. Warnings (a peer that does not resolve while it
  restarts, a quorum being waited for) are what brokers say during the kills and rolls these scenarios cause.

A scenario that provokes a specific error on purpose declares it with `log_watch.allow(pattern, why)`.

`LogWatch` keeps a read offset per log file across the session, so each scenario is charged with exactly the lines
written since the previous one was checked: its fixtures' set-up (the shared cluster's creation is checked with the
first scenario) and its body, including logs of pods that were replaced meanwhile (every incarnation has a file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backends import LogSource
from operator_process import problems_in_log

BROKER_ERROR_LEVELS = frozenset({"error", "critical"})


def broker_problems(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        if "Traceback" in line:
            found.append(line)
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and str(event.get("level", "")).lower() in BROKER_ERROR_LEVELS:
            found.append(line)
    return found


def operator_problems(text: str) -> list[str]:
    found = problems_in_log(text)
    for line in text.splitlines():
        if line in found:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and (str(event.get("severity", "")).lower() == "critical"
                                        or "failed permanently" in str(event.get("message", ""))):
            found.append(line)
    return found


RULES: dict[str, Callable[[str], list[str]]] = {"broker": broker_problems, "operator": operator_problems}


@dataclass
class LogWatch:
    """Reads each operator and broker log from where the previous check stopped."""

    sources: Callable[[], list[LogSource]]
    offsets: dict[Path, int] = field(default_factory=dict)
    allowed: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def allow(self, pattern: str, why: str) -> None:
        """Lines matching `pattern` are expected in the current scenario, because `why`."""
        self.allowed.append((re.compile(pattern), why))

    def check(self) -> list[str]:
        """Unexpected lines since the previous check (complete lines only); resets the allowances."""
        problems = []
        for source in self.sources():
            start = self.offsets.get(source.path, 0)
            with source.path.open("rb") as handle:
                handle.seek(start)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offsets[source.path] = start + len(complete)
            for line in RULES[source.role](complete.decode(errors="replace")):
                if not any(pattern.search(line) for pattern, _ in self.allowed):
                    problems.append(f"{source.label}: {line[:1500]}")
        self.allowed.clear()
        return problems

    def skip_to_end(self) -> None:
        """Forget what is logged so far (lines from before the watch started are not a scenario's)."""
        for source in self.sources():
            self.offsets[source.path] = source.path.stat().st_size
