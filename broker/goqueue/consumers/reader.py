"""Reading records of a partition for delivery: from an offset onwards, or at a set of offsets (redeliveries).

Thin I/O over the host's `Records.fetch` (whole batches below the high watermark, from the partition's leader
wherever it is) and `storage.batch.decode_records` (a batch failing its CRC is CORRUPT_RECORD). It reports where
reading stopped, so the caller can move its cursor past compaction gaps and skipped batches.

The coordinator of a group is not necessarily the leader (or a replica) of the partitions the group reads, so
reads go to the leader and take the high watermark and log start offset from its answer: one round trip per
partition read, and never a follower's trailing view (a commit validated against it would be refused wrongly).
An offset that retention already removed is answered OFFSET_OUT_OF_RANGE with the log start; reading moves there.

An offset read at that the answer does not reach is not thereby gone: a freshly elected leader's high watermark lags
until its followers fetch from it, so a record the group was delivered a moment ago may not be returned yet.
`read_at` therefore says apart what the leader's log no longer holds (below its log start, or a compaction gap
inside what it returned) from what it could not return now; only the former may be settled without delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from goqueue.consumers.offsets import PartitionBounds
from goqueue.consumers.port import Fetched, Records
from goqueue.errors import CorruptRecord, OffsetOutOfRange
from goqueue.storage import batch as batches
from goqueue.storage.batch import BatchHeader, Record


@dataclass(frozen=True)
class ReadResult:
    records: list[Record]
    next_offset: int  # the offset after the last record taken (or past a gap); unchanged when nothing was read
    removed: int = 0  # offsets passed because retention had removed them (reading moved to the log start)


@dataclass(frozen=True)
class ReadAtResult:
    found: dict[int, Record]
    gone: set[int]  # not in the leader's log any more (retention, compaction); the others wanted: not readable now


def _decode(topic: str, partition: int, data: bytes, pos: int, header: BatchHeader) -> list[Record]:
    """A batch's records; one that fails its CRC is the leader's copy corrupt on disk: CORRUPT_RECORD, naming the
    offsets, so the group stops there visibly (an operator resets its offset past them) instead of a traceback."""
    try:
        return batches.decode_records(data, pos)
    except batches.InvalidBatch as exc:
        first, last = header.base_offset, header.last_offset
        raise CorruptRecord(
            f"{topic}/{partition}: the stored batch of offsets {first}-{last} failed its CRC32C check on read: the "
            f"partition leader's copy of these records is corrupt on disk; to read past them, reset the group's "
            f"offset to {last + 1}", topic=topic, partition=partition, offset=first, lastOffset=last) from exc


async def partition_bounds(host: Records, topic: str, partition: int,
                           timestamp_ms: int | None = None) -> PartitionBounds:
    """Log start offset, high watermark (and the offset for a timestamp) from the partition's leader."""
    return await host.offsets(topic, partition, timestamp_ms)


async def _fetch(host: Records, topic: str, partition: int, offset: int, max_bytes: int) -> tuple[Fetched, int]:
    """Batches from `offset`, or from the log start when retention removed `offset`; and where they start."""
    try:
        return await host.fetch(topic, partition, offset, max_bytes), offset
    except OffsetOutOfRange as exc:
        start = exc.details.get("log_start_offset")
        if start is None:
            start = (await partition_bounds(host, topic, partition)).log_start
        if offset >= int(start):
            raise  # past the log end: the caller retries later
        return await host.fetch(topic, partition, int(start), max_bytes), int(start)


async def read_from(host: Records, topic: str, partition: int, offset: int, max_records: int,
                    max_bytes: int) -> ReadResult:
    """Up to `max_records` records at or after `offset`, below the high watermark."""
    taken: list[Record] = []
    next_offset = offset
    removed = 0
    while len(taken) < max_records:
        asked = next_offset
        try:
            result, next_offset = await _fetch(host, topic, partition, next_offset, max_bytes)
        except OffsetOutOfRange:
            break  # retention or a truncation moved the log meanwhile; the caller retries later
        removed += next_offset - asked
        hwm = result.high_watermark
        progressed = False
        for pos, header in batches.iter_headers(result.data):
            if header.next_offset <= next_offset:
                continue
            try:
                decoded = _decode(topic, partition, result.data, pos, header)
            except CorruptRecord:
                if taken:  # hand out what came before it; the next read starts at the corrupt batch and reports it
                    return ReadResult(taken, next_offset, removed)
                raise
            for record in decoded:
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
        if not progressed or next_offset >= hwm:
            break
    return ReadResult(taken, next_offset, removed)


async def read_at(
    host: Records, topic: str, partition: int, wanted: Iterable[int], max_bytes: int,
) -> ReadAtResult:
    """The records at `wanted` offsets, and those the leader's log no longer holds; any other offset could not be
    read now (above a lagging high watermark, past the log end) and is neither."""
    remaining = sorted(set(wanted))
    found: dict[int, Record] = {}
    gone: set[int] = set()
    while remaining:
        try:
            result, start = await _fetch(host, topic, partition, remaining[0], max_bytes)
        except OffsetOutOfRange:
            break  # past the answering leader's log end: not readable now
        gone.update(o for o in remaining if o < start)  # below the log start: removed by retention
        remaining = [o for o in remaining if o >= start]
        if not result.data or not remaining:
            break  # nothing below the high watermark there (yet)
        want = set(remaining)
        last = remaining[0]
        for pos, header in batches.iter_headers(result.data):
            if not want.intersection(range(header.base_offset, header.next_offset)):
                last = max(last, header.next_offset)
                continue
            for record in _decode(topic, partition, result.data, pos, header):
                if record.offset in want:
                    found[record.offset] = record
            last = max(last, header.next_offset)
        # Below the end of the batches returned and not in them: compaction removed it.
        gone.update(o for o in remaining if o < last and o not in found)
        left = [o for o in remaining if o >= last and o not in found]
        if left == remaining:
            break
        remaining = left
    return ReadAtResult(found, gone)
