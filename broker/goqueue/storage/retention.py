"""Retention: delete whole segments older than the topic's max age, or past its size budget.

Only whole closed segments are deleted (rename then remove, `Segment.delete`), never part of one, so retention
needs no rewrite and a crash mid-way leaves only `.deleted` files that the next open removes. The active segment
is rolled first when everything in it has expired, so a quiet topic still ages out. A segment is never deleted
while it holds records at or above the high watermark (not yet durable or replicated).

Called from the maintenance thread.
"""

from __future__ import annotations

import logging

from goqueue.storage.log import PartitionLog

log = logging.getLogger(__name__)


def apply_retention(partition_log: PartitionLog, now_s: float, max_age_s: float, max_bytes: int) -> list[int]:
    """Delete expired or excess segments; returns their base offsets, oldest first."""
    deleted: list[int] = []
    cutoff_ms = (now_s - max_age_s) * 1000
    active = partition_log.active
    if (active.size and 0 <= active.max_timestamp_ms < cutoff_ms
            and partition_log.high_watermark >= partition_log.log_end_offset):
        partition_log.roll()
    while len(partition_log.segments) > 1:
        oldest = partition_log.segments[0]
        expired = 0 <= oldest.max_timestamp_ms < cutoff_ms
        oversize = partition_log.size_bytes > max_bytes
        if not (expired or oversize):
            break
        if partition_log.delete_oldest_segment() is None:
            break
        deleted.append(oldest.base_offset)
        log.info("segment.deleted", extra={
            "log": partition_log.directory.name, "base_offset": oldest.base_offset,
            "reason": "age" if expired else "size"})
    partition_log.close_retired()
    return deleted
