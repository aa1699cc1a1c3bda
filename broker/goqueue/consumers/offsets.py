"""Offset resets: a pure planner from the request and each partition's bounds to the new committed offsets.

Targets (after `kafka-consumer-groups --reset-offsets`): earliest (log start), latest (high watermark), an offset,
a timestamp (the first offset whose timestamp is at or after it, via the time index; the high watermark when
none is), or shift-by N from the committed offset. Anything outside [log start, high watermark] is clamped, and
the plan says so; a dry run returns the plan without applying it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from goqueue.models import OffsetResetEntry, OffsetResetRequest, ResetTarget


@dataclass(frozen=True)
class PartitionBounds:
    log_start: int
    high_watermark: int
    for_timestamp: int | None = None  # first offset at/after the request's timestamp, when one was asked


def plan_reset(
    request: OffsetResetRequest,
    bounds: Mapping[int, PartitionBounds],
    committed: Mapping[int, int | None],
) -> list[OffsetResetEntry]:
    entries = []
    for partition in sorted(bounds):
        b = bounds[partition]
        current = committed.get(partition)
        if request.to is ResetTarget.EARLIEST:
            wanted = b.log_start
        elif request.to is ResetTarget.LATEST:
            wanted = b.high_watermark
        elif request.to is ResetTarget.OFFSET:
            assert request.offset is not None
            wanted = request.offset
        elif request.to in (ResetTarget.DATETIME, ResetTarget.TIMESTAMP):
            wanted = b.high_watermark if b.for_timestamp is None else b.for_timestamp
        else:
            assert request.shift_by is not None
            wanted = (b.log_start if current is None else current) + request.shift_by
        target = min(max(wanted, b.log_start), b.high_watermark)
        entries.append(OffsetResetEntry(topic=request.topic, partition=partition, current=current, target=target,
                                        clamped=target != wanted))
    return entries
