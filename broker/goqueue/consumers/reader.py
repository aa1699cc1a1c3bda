"""Reading records of a partition for delivery: from an offset onwards, or at a set of offsets (redeliveries).

Thin I/O over `Broker.fetch` (whole batches below the high watermark; forwarded to the partition's leader when it
is elsewhere) and `storage.batch.decode_records`. It reports where reading stopped, so the caller can move its
cursor past compaction gaps and skipped batches.

The coordinator of a group is not necessarily a replica of the partitions the group reads: bounds come from this
broker's own replica when it holds one (leader, or follower — whose high watermark may trail the leader's by a
fetch, which delays a delivery by that much and never skips one), and from the leader otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from goqueue.broker import Broker
from goqueue.consumers.offsets import PartitionBounds
from goqueue.errors import OffsetOutOfRange
from goqueue.storage import batch as batches
from goqueue.storage.batch import Record


@dataclass(frozen=True)
class ReadResult:
    records: list[Record]
    next_offset: int  # the offset after the last record taken (or past a gap); unchanged when nothing was read
    log_start_offset: int
    high_watermark: int


async def partition_bounds(broker: Broker, topic: str, partition: int,
                           timestamp_ms: int | None = None) -> PartitionBounds:
    """Log start offset, high watermark (and the offset for a timestamp) from the local replica, else the leader."""
    if (topic, partition) in broker.partitions:
        offsets = broker.partition_offsets(topic, partition, timestamp_ms)
    else:
        offsets = await broker.partition_offsets_routed(topic, partition, timestamp_ms)
    return PartitionBounds(int(offsets["earliest"] or 0), int(offsets["latest"] or 0), offsets["forTimestamp"])


async def read_from(broker: Broker, topic: str, partition: int, offset: int, max_records: int,
                    max_bytes: int) -> ReadResult:
    """Up to `max_records` records at or after `offset`, below the high watermark."""
    bounds = await partition_bounds(broker, topic, partition)
    start, hwm = bounds.log_start, bounds.high_watermark
    offset = max(offset, start)
    taken: list[Record] = []
    next_offset = offset
    while len(taken) < max_records and next_offset < hwm:
        try:
            result = await broker.fetch(topic, partition, next_offset, max_bytes)
        except OffsetOutOfRange:
            break  # retention removed it between the lookup and the read; the caller retries later
        progressed = False
        for pos, header in batches.iter_headers(result.data):
            if header.next_offset <= next_offset:
                continue
            for record in batches.decode_records(result.data, pos):
                if record.offset < next_offset or record.offset >= hwm:
                    continue
                if len(taken) >= max_records:
                    break
                taken.append(record)
                next_offset = record.offset + 1
                progressed = True
            if len(taken) >= max_records:
                break
            if min(header.next_offset, hwm) > next_offset:  # step over a compaction gap at the batch's end
                next_offset = min(header.next_offset, hwm)
                progressed = True
        if not progressed:
            break
    return ReadResult(taken, next_offset, start, hwm)


async def read_at(
    broker: Broker, topic: str, partition: int, wanted: Iterable[int], max_bytes: int,
) -> dict[int, Record]:
    """The records at `wanted` offsets that still exist (retention may have removed some)."""
    remaining = sorted(set(wanted))
    found: dict[int, Record] = {}
    start = (await partition_bounds(broker, topic, partition)).log_start
    remaining = [o for o in remaining if o >= start]
    while remaining:
        try:
            result = await broker.fetch(topic, partition, remaining[0], max_bytes)
        except OffsetOutOfRange:
            break
        if not result.data:
            break
        want = set(remaining)
        last = remaining[0]
        for pos, header in batches.iter_headers(result.data):
            if not want.intersection(range(header.base_offset, header.next_offset)):
                last = max(last, header.next_offset)
                continue
            for record in batches.decode_records(result.data, pos):
                if record.offset in want:
                    found[record.offset] = record
            last = max(last, header.next_offset)
        left = [o for o in remaining if o >= last and o not in found]
        if left == remaining:
            break
        remaining = left
    return found
