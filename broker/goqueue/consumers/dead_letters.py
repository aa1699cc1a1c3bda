"""Dead letters: a message delivered `maxDeliveries` times without an ack leaves the group's window for good.

It is appended to the dead-letter topic (`<topic>.dlq` unless the group names one; created on first use with the
source's partition count) with its key, value and headers intact, plus headers saying why and where it came from.
Only after that append is durable is the message settled in the group (its lease tombstoned, the committed offset
moved). A crash in between dead-letters it again on restart: the DLQ may hold a duplicate, never a loss.
"""

from __future__ import annotations

from goqueue.broker import Broker
from goqueue.errors import TopicNotFound
from goqueue.models import TopicConfig, TopicCreate
from goqueue.records import RecordIn
from goqueue.storage.batch import Record

HEADER_PREFIX = "goqueue.dlq."
REASON_MAX_DELIVERIES = "max-deliveries-exceeded"


def dead_letter_record(record: Record, *, group: str, topic: str, partition: int, deliveries: int,
                       reason: str | None, now_ms: int) -> RecordIn:
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
    return RecordIn(record.key, record.value, headers, None, now_ms)


async def ensure_dead_letter_topic(broker: Broker, name: str, source: str) -> None:
    try:
        broker.registry.get(name)
    except TopicNotFound:
        meta = broker.registry.get(source)
        await broker.create_topic(TopicCreate(name=name, partitions=meta.partitions,
                                        replication_factor=meta.replication_factor, config=TopicConfig()))
