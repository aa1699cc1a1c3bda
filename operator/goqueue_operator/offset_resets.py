"""Declarative offset resets, each applied exactly once by its id. Pure.

How "exactly once" holds across operator crashes, in three steps per reset:

1. plan: a dry run of the reset gives the target offset of every partition (earliest, latest, an offset or a
   timestamp resolved *now*);
2. record: the plan is written to status.offsetResets as phase Applying before anything changes on the broker;
3. apply: each partition is set to its *recorded* offset (`to: offset`), then the entry becomes Applied.

A crash after step 2 re-applies the recorded offsets: setting a partition to the same explicit offset twice is
the same as once (unlike "latest", which would move on). An entry in Applied or Failed is never applied again,
and the CRD forbids changing an entry once added: a new reset needs a new id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from goqueue.models import OffsetResetPlan, OffsetResetRequest, ResetTarget
from goqueue_operator.status.conditions import timestamp
from goqueue_operator.views import AppliedReset, GroupView, OffsetResetSpec, PartitionOffset

APPLYING, APPLIED, FAILED = "Applying", "Applied", "Failed"
TARGETS = {"earliest": ResetTarget.EARLIEST, "latest": ResetTarget.LATEST, "offset": ResetTarget.OFFSET,
           "timestamp": ResetTarget.DATETIME}


def recorded(entries: Sequence[AppliedReset], reset_id: str) -> AppliedReset | None:
    return next((r for r in entries if r.id == reset_id), None)


def pending_resets(view: GroupView, entries: Sequence[AppliedReset]) -> list[OffsetResetSpec]:
    """Resets of the spec not yet Applied or Failed in `entries` (status), in spec order."""
    done = {r.id for r in entries if r.phase in (APPLIED, FAILED)}
    return [r for r in view.spec.offset_resets if r.id not in done]


def plan_request(reset: OffsetResetSpec) -> OffsetResetRequest:
    """The dry run that resolves the reset's targets."""
    return OffsetResetRequest(
        topic=reset.topic, partition=reset.partition, to=TARGETS[reset.to], offset=reset.offset,
        timestamp_ms=int(reset.timestamp.timestamp() * 1000) if reset.timestamp else None,
        dry_run=True, force=reset.force)


def planned_offsets(plan: OffsetResetPlan) -> list[PartitionOffset]:
    return [PartitionOffset(topic=e.topic, partition=e.partition, offset=e.target) for e in plan.partitions]


def apply_requests(offsets: Sequence[PartitionOffset], force: bool) -> list[OffsetResetRequest]:
    """One explicit-offset reset per partition: re-applying them after a crash changes nothing."""
    return [OffsetResetRequest(topic=o.topic, partition=o.partition, to=ResetTarget.OFFSET, offset=o.offset,
                               force=force) for o in offsets]


def with_entry(view: GroupView, entries: Sequence[AppliedReset], new: AppliedReset) -> list[AppliedReset]:
    """`entries` with `new` added or replaced, in spec order (entries of removed spec items are kept last)."""
    merged = [r for r in entries if r.id != new.id] + [new]
    order = {r.id: i for i, r in enumerate(view.spec.offset_resets)}
    return sorted(merged, key=lambda r: order.get(r.id, len(order)))


def render(entries: Sequence[AppliedReset]) -> list[dict[str, Any]]:
    """status.offsetResets (a merge patch replaces the whole list)."""
    return [_render(r) for r in entries]


def entry(reset_id: str, phase: str, now: datetime, message: str,
          offsets: Sequence[PartitionOffset] = ()) -> AppliedReset:
    return AppliedReset(id=reset_id, phase=phase, time=now, message=message, partitions=list(offsets))


def _render(reset: AppliedReset) -> dict[str, Any]:
    return {"id": reset.id, "phase": reset.phase, "time": timestamp(reset.time) if reset.time else None,
            "message": reset.message,
            "partitions": [{"topic": p.topic, "partition": p.partition, "offset": p.offset} for p in reset.partitions]}
