"""Dead letters: a message delivered `maxDeliveries` times without an ack leaves the group's window for good.

It is appended to the dead-letter topic (`<topic>.dlq` unless the group names one; created on first use with the
source's partition count) with its key, value and headers intact, plus headers saying why and where it came from.
Only after that append is durable is the message settled in the group (its lease tombstoned, the committed offset
moved). A crash in between dead-letters it again on restart: the DLQ may hold a duplicate, never a loss.

`DeadLetters.dead_letter` does that for the coordinator's expiry tick and for a nack of a last delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from goqueue.config import ConsumersSection
from goqueue.consumers import reader
from goqueue.consumers.assignment import TP
from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.groups import Group
from goqueue.consumers.persistence import GroupWriter
from goqueue.consumers.port import OutgoingRecord, Records, TopicLookup
from goqueue.consumers.state_store import Changes
from goqueue.errors import TopicNotFound
from goqueue.metrics import ConsumerMetrics
from goqueue.models import TopicConfig, TopicCreate
from goqueue.storage.batch import Record

log = logging.getLogger(__name__)

HEADER_PREFIX = "goqueue.dlq."
REASON_MAX_DELIVERIES = "max-deliveries-exceeded"


def dead_letter_record(record: Record, *, group: str, topic: str, partition: int, deliveries: int,
                       reason: str | None, now_ms: int) -> OutgoingRecord:
    """The DLQ copy of `record`: original key, value and headers, then the goqueue.dlq.* headers."""
    headers = [h for h in record.headers if not h[0].startswith(HEADER_PREFIX)]
    headers += [
        (HEADER_PREFIX + "reason", REASON_MAX_DELIVERIES.encode()),
        (HEADER_PREFIX + "group", group.encode()),
        (HEADER_PREFIX + "source-topic", topic.encode()),
        (HEADER_PREFIX + "source-partition", str(partition).encode()),
        (HEADER_PREFIX + "source-offset", str(record.offset).encode()),
        (HEADER_PREFIX + "source-timestamp-ms", str(record.timestamp_ms).encode()),
        (HEADER_PREFIX + "delivery-count", str(deliveries).encode()),
    ]
    if reason:
        headers.append((HEADER_PREFIX + "last-error", reason.encode()))
    return OutgoingRecord(record.key, record.value, headers, now_ms)


async def ensure_dead_letter_topic(host: TopicLookup, name: str, source: str) -> None:
    """Create the dead-letter topic on first use, with the source topic's partitions and replication."""
    try:
        host.topic(name)
    except TopicNotFound:
        meta = host.topic(source)
        await host.create_topic(TopicCreate(name=name, partitions=meta.partitions,
                                            replication_factor=meta.replication_factor, config=TopicConfig()))


class DeadLetterHost(TopicLookup, Records, Protocol):
    """Reading the exhausted messages, creating the dead-letter topic, appending to it."""


class DeadLetters:
    def __init__(self, host: DeadLetterHost, table: CoordinatedGroups, writer: GroupWriter,
                 settings: ConsumersSection, metrics: ConsumerMetrics, clock: Callable[[], float]) -> None:
        self.host = host
        self.table = table
        self.writer = writer
        self.settings = settings
        self.metrics = metrics
        self.clock = clock

    async def dead_letter(self, group: Group, tp: TP, offsets: list[int]) -> int:
        """Append the messages to the dead-letter topic, then settle them; returns how many moved."""
        cursor = group.cursors.get(tp)
        if cursor is None:
            return 0
        slots = [cursor.slots[o] for o in offsets if o in cursor.slots and not cursor.slots[o].dead_lettering]
        if not slots:
            return 0
        epoch = cursor.epoch
        eff = group.effective(self.settings)
        target = eff.dead_letter_for(tp[0], self.settings.dead_letter_suffix)
        for slot in slots:
            slot.dead_lettering = True
        try:
            read = await reader.read_at(self.host, tp[0], tp[1], [s.offset for s in slots], self.host.max_fetch_bytes)
            now_ms = int(self.clock() * 1000)
            copies = [dead_letter_record(read.found[s.offset], group=group.name, topic=tp[0], partition=tp[1],
                                         deliveries=s.deliveries, reason=s.reason, now_ms=now_ms)
                      for s in slots if s.offset in read.found]
            if copies:
                await ensure_dead_letter_topic(self.host, target, tp[0])
                await self.host.produce(target, copies)
        finally:
            for slot in slots:
                slot.dead_lettering = False
        if not self.table.owns(group) or group.cursors.get(tp) is not cursor or cursor.epoch != epoch:
            return 0  # deleted or reset meanwhile: the copies stand, the old window is gone anyway
        changes = Changes()
        moved = 0
        for slot in slots:
            if slot.offset not in read.found and slot.offset not in read.gone:
                continue  # not readable now: copied at a later tick, never settled uncopied
            if cursor.slots.get(slot.offset) is slot:  # not acked meanwhile
                cursor.settle(slot.offset)
                changes.slots.add((tp, slot.offset))
                moved += 1
        changes.cursors.add(tp)
        await self.writer.persist(group, changes)
        self.metrics.dead_lettered.labels(group.name, tp[0]).inc(moved)
        log.warning("messages.dead_lettered", extra={"group": group.name, "topic": tp[0], "partition": tp[1],
                                                     "count": moved, "dead_letter_topic": target})
        return moved
