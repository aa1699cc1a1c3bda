"""Compaction for `cleanup.policy=compact` topics: the newest record per key wins.

Each closed segment is rewritten without the records a newer record of the same key supersedes, and without
tombstones (records with a null value) older than the tombstone retention, so consumers that lag behind still see
a delete for that long. Offsets never change: rewritten batches keep their base offset, last offset delta and
producer fields, and each record its offset delta, so the log gets gaps, never renumbering, and the idempotent
producer state rebuilt from headers is the same as before. A batch left with no record is dropped. The active
segment is never rewritten.

Crash safety: the copy is written to `<base>.log.cleaned`, fsynced, then renamed over the original
(`PartitionLog.replace_segment`, which removes the old indexes first); a crash before the rename leaves a
`.cleaned` file that the next open removes and the original intact, a crash after it leaves the complete compacted
segment, whose indexes the next open rebuilds.

Called from the maintenance thread. Memory: one dict entry per distinct key in the partition.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from goqueue.storage import batch as batches
from goqueue.storage.log import PartitionLog
from goqueue.storage.segment import Segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactionResult:
    segments_rewritten: int
    records_removed: int
    bytes_before: int
    bytes_after: int


def latest_offsets_by_key(partition_log: PartitionLog) -> dict[bytes, int]:
    """key → offset of its newest record, over every record below the high watermark."""
    latest: dict[bytes, int] = {}
    offset = partition_log.log_start_offset
    while offset < partition_log.high_watermark:
        data = partition_log.read(offset, 4 * 2**20)
        if not data:
            break
        for pos, header in batches.iter_headers(data):
            for record in batches.decode_records(data, pos):
                if record.key is not None:
                    latest[record.key] = record.offset
            offset = header.next_offset
    return latest


def compact_log(partition_log: PartitionLog, now_s: float, tombstone_retention_s: float) -> CompactionResult:
    latest = latest_offsets_by_key(partition_log)
    tombstone_cutoff_ms = (now_s - tombstone_retention_s) * 1000
    rewritten = removed = before = after = 0
    for segment in partition_log.closed_segments():
        if segment.next_offset > partition_log.high_watermark:
            break
        kept_batches, dropped = _compact_segment(segment, latest, tombstone_cutoff_ms)
        if not dropped:
            continue
        cleaned = segment.path.with_name(segment.path.name + ".cleaned")
        with open(cleaned, "wb") as handle:
            for data in kept_batches:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        before += segment.size
        after += sum(len(b) for b in kept_batches)
        partition_log.replace_segment(segment, cleaned)
        rewritten += 1
        removed += dropped
    if rewritten:
        log.info("log.compacted", extra={
            "log": partition_log.directory.name, "segments": rewritten, "records_removed": removed,
            "bytes_before": before, "bytes_after": after})
    partition_log.close_retired()
    return CompactionResult(rewritten, removed, before, after)


def _compact_segment(
    segment: Segment, latest: dict[bytes, int], tombstone_cutoff_ms: int | float
) -> tuple[list[bytes], int]:
    """The segment's batches with superseded records and expired tombstones removed, and how many were."""
    data = segment.read(0, segment.size)
    kept: list[bytes] = []
    dropped = 0
    for pos, header in batches.scan_batches(data):
        rows = batches.decode_rows(data, pos, header)
        keep = []
        for row in rows:
            offset_delta, _ts, key, value, _headers = row
            offset = header.base_offset + offset_delta
            superseded = key is not None and latest.get(key, offset) != offset
            expired_tombstone = value is None and header.max_timestamp_ms < tombstone_cutoff_ms
            if superseded or expired_tombstone:
                dropped += 1
            else:
                keep.append(row)
        if len(keep) == len(rows):
            kept.append(data[pos:pos + header.size])
        elif keep:
            rebuilt = batches.build_batch_from_rows(
                keep, header.first_timestamp_ms, header.max_timestamp_ms, header.producer_id, header.producer_epoch,
                header.base_sequence, attributes=header.attributes, last_offset_delta=header.last_offset_delta)
            batches.stamp(rebuilt, header.base_offset, header.leader_epoch)
            kept.append(bytes(rebuilt))
    return kept, dropped
