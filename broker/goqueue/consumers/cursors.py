"""`GroupCursors`: a group's cursor in each partition it reads, and the facts of the topics it reads.

A group has no cursor in a partition until the first request that needs its position there (a consume, a commit,
a declare, a one-partition reset); that request starts *every* partition of the topic at once
(`offsets.start_offset`, Kafka's `auto.offset.reset`), from each partition's bounds as its leader reports them
(`reader.partition_bounds`). Internal topics are refused here: groups never read them.

Changes are recorded in the caller's `Changes`; the caller persists them (`persistence.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from goqueue.config import ConsumersSection, OffsetReset
from goqueue.consumers import reader
from goqueue.consumers.assignment import TP
from goqueue.consumers.groups import Group
from goqueue.consumers.leases import Cursor
from goqueue.consumers.offsets import PartitionBounds, start_offset
from goqueue.consumers.port import Records, TopicLookup
from goqueue.consumers.state_store import Changes, is_internal
from goqueue.errors import GoQueueError, InvalidRequest, PartitionNotFound


class CursorHost(TopicLookup, Records, Protocol):
    """Topic lookup, and the bounds of partitions wherever they are led."""


class GroupCursors:
    def __init__(self, host: CursorHost, settings: ConsumersSection) -> None:
        self.host = host
        self.settings = settings

    def check_topic(self, topic: str) -> int:
        """The topic's partition count; refuses internal topics."""
        if is_internal(topic):
            raise InvalidRequest(f"{topic!r} is an internal topic; groups cannot consume it")
        return self.host.topic(topic).partitions

    def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """Partition count per topic (0 for a topic that does not exist, or no longer)."""
        known = self.host.topics()
        return {t: known[t].partitions if t in known else 0 for t in topics}

    async def bounds(self, tp: TP, timestamp_ms: int | None = None) -> PartitionBounds:
        """Log start and high watermark of a partition, wherever it is led (`reader.partition_bounds`)."""
        return await reader.partition_bounds(self.host, tp[0], tp[1], timestamp_ms)

    async def cursor(self, group: Group, tp: TP, start_from: OffsetReset | None, changes: Changes) -> Cursor:
        """The group's cursor in a partition. The first one of a topic starts every partition of it at once
        (`offsets.start_offset`); raises the partition's error when its bounds cannot be read now."""
        cursor = group.cursors.get(tp)
        if cursor is None:
            unreadable = await self.start_topic(group, tp[0], start_from, changes)
            cursor = group.cursors.get(tp)
            if cursor is None:
                raise unreadable.get(tp[1]) or PartitionNotFound(
                    f"topic {tp[0]!r} has no partition {tp[1]}", topic=tp[0], partition=tp[1])
        return cursor

    async def start_topic(self, group: Group, topic: str, start_from: OffsetReset | None,
                          changes: Changes) -> dict[int, GoQueueError]:
        """Pin every partition of `topic` the group has no cursor in; returns the errors of those whose bounds
        could not be read now (no leader, leader unreachable), which a later request pins."""
        missing = [p for p in range(self.host.topic(topic).partitions) if (topic, p) not in group.cursors]
        looked_up = await asyncio.gather(*(self.bounds((topic, p)) for p in missing), return_exceptions=True)
        unreadable: dict[int, GoQueueError] = {}
        # Decided after the lookups, between which another request may have started the topic.
        started = any(t == topic for t, _ in group.cursors)
        policy = start_from or OffsetReset(group.effective(self.settings).auto_offset_reset)
        for partition, bounds in zip(missing, looked_up, strict=True):
            if isinstance(bounds, GoQueueError) and bounds.retriable:
                unreadable[partition] = bounds
                continue
            if isinstance(bounds, BaseException):
                raise bounds
            tp = (topic, partition)
            if tp not in group.cursors:
                group.cursors[tp] = Cursor.starting_at(start_offset(bounds, policy, started))
                changes.cursors.add(tp)
        if topic not in group.topics:
            group.topics.add(topic)
            changes.group = True
        return unreadable
