"""Where a group's offsets start and where resets move them: pure functions of each partition's bounds.

Start (Kafka's `auto.offset.reset`, decided once per topic): the first request that needs a group's position in a
topic pins every partition of it together — at the log start with earliest (`--from-beginning`), else at the high
watermark — so a first bounded read that touches one partition cannot leave the others to a later request with
another policy (which skipped everything they held). A partition still without a position once the topic is
started — added to the topic since, or without a leader at that moment — starts at its log start: it holds nothing
written before the group started reading, or at worst older records, never a skip.

Targets (after `kafka-consumer-groups --reset-offsets`): earliest (log start), latest (high watermark), an offset,
a timestamp (the first offset whose timestamp is at or after it, via the time index; the high watermark when
none is), or shift-by N from the committed offset. Anything outside [log start, high watermark] is clamped, and
the plan says so; a dry run returns the plan without applying it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from goqueue.config import OffsetReset
from goqueue.models import OffsetResetEntry, OffsetResetRequest, ResetTarget


@dataclass(frozen=True)
class PartitionBounds:
    log_start: int
    high_watermark: int
    for_timestamp: int | None = None  # first offset at/after the request's timestamp, when one was asked


def start_offset(bounds: PartitionBounds, policy: OffsetReset, topic_started: bool) -> int:
    """Where a group starts in a partition it has no position in (`topic_started`: it has one in another
    partition of the topic)."""
    if topic_started or policy is OffsetReset.EARLIEST:
        return bounds.log_start
    return bounds.high_watermark


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
