"""Conditions: computed from observations each reconcile, rendered with stable transition times.

A condition's `lastTransitionTime` moves only when its status changes (Kubernetes API conventions), so
`kubectl describe` shows since when a cluster has been Degraded, not when the operator last looked.
`transitions` tells the handlers which conditions changed, so they emit one Event per change, not one per
reconcile.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str = ""
    warning: bool = False  # an Event for this condition becoming true is a Warning

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_conditions(conditions: Iterable[Condition], previous: Sequence[Mapping[str, Any]], *,
                      generation: int, now: datetime) -> list[JSON]:
    before = {c.get("type"): c for c in previous}
    rendered = []
    for condition in conditions:
        old = before.get(condition.type)
        unchanged = old is not None and old.get("status") == condition.status_text
        rendered.append({
            "type": condition.type,
            "status": condition.status_text,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": old["lastTransitionTime"] if unchanged and old and old.get("lastTransitionTime")
            else timestamp(now),
            "observedGeneration": generation,
        })
    return rendered


def transitions(conditions: Iterable[Condition], previous: Sequence[Mapping[str, Any]]) -> list[Condition]:
    """Conditions whose status or reason differs from the previous status. New ones count when True, and a new
    Ready that is False (a resource that fails from its first reconcile must say so in an Event too)."""
    before = {c.get("type"): c for c in previous}
    changed = []
    for condition in conditions:
        old = before.get(condition.type)
        if old is None:
            if condition.status or (condition.type == "Ready" and condition.status is False):
                changed.append(condition)
        elif old.get("status") != condition.status_text or old.get("reason") != condition.reason:
            changed.append(condition)
    return changed

