"""Retention deletes whole segments by age or size, never past the high watermark."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from goqueue.storage.log import PartitionLog
from goqueue.storage.retention import apply_retention

if TYPE_CHECKING:
    from conftest import FakeClock, LogKit

pytestmark = pytest.mark.unit

HOUR = 3600.0
NO_SIZE_LIMIT = 10**12


def _three_segments_an_hour_apart(logs: LogKit, clock: FakeClock) -> PartitionLog:
    """Segments [0, 3), [3, 6), [6, 9): each written an hour after the previous one."""
    plog = logs.open(segment_bytes=10**6)
    for n in range(9):
        logs.append(plog, [b"v%d" % n])
        if n % 3 == 2:
            clock.advance(HOUR)
            if n < 8:
                plog.roll()
    logs.publish(plog)
    return plog


def test_segments_older_than_max_age_are_deleted_whole(logs: LogKit, clock: FakeClock) -> None:
    plog = _three_segments_an_hour_apart(logs, clock)
    size_of_first = plog.segments[0].size
    size_before = plog.size_bytes

    deleted = apply_retention(plog, clock(), max_age_s=2.5 * HOUR, max_bytes=NO_SIZE_LIMIT)

    assert deleted == [0]
    assert plog.log_start_offset == 3
    assert plog.size_bytes == size_before - size_of_first
    assert not list(plog.directory.glob(f"{0:020d}*")), "data and both indexes are gone"
    assert logs.values(plog) == [b"v%d" % n for n in range(3, 9)]


def test_an_expired_active_segment_is_rolled_so_a_quiet_topic_ages_out(logs: LogKit, clock: FakeClock) -> None:
    plog = _three_segments_an_hour_apart(logs, clock)
    clock.advance(10 * HOUR)

    deleted = apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT)

    assert deleted == [0, 3, 6]
    assert [s.base_offset for s in plog.segments] == [9]
    assert (plog.log_start_offset, plog.log_end_offset, plog.size_bytes) == (9, 9, 0)
    assert logs.append(plog, [b"fresh"]).base_offset == 9


def test_nothing_at_or_above_the_high_watermark_is_deleted(logs: LogKit, clock: FakeClock) -> None:
    plog = _three_segments_an_hour_apart(logs, clock)
    plog.high_watermark = 2  # e.g. not yet replicated
    clock.advance(10 * HOUR)

    deleted = apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=0)

    assert deleted == []
    assert [s.base_offset for s in plog.segments] == [0, 3, 6]

    plog.high_watermark = 4
    assert apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=0) == [0]
    assert plog.log_start_offset == 3


def test_the_active_segment_is_not_rolled_while_it_holds_unpublished_records(
    logs: LogKit, clock: FakeClock
) -> None:
    plog = _three_segments_an_hour_apart(logs, clock)
    logs.append(plog, [b"unflushed"])
    clock.advance(10 * HOUR)

    deleted = apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT)

    assert deleted == [0, 3]
    assert [s.base_offset for s in plog.segments] == [6]


def test_size_retention_deletes_oldest_whole_segments_until_within_budget(logs: LogKit, clock: FakeClock) -> None:
    plog = _three_segments_an_hour_apart(logs, clock)
    sizes = [s.size for s in plog.segments]

    deleted = apply_retention(plog, clock(), max_age_s=1000 * HOUR, max_bytes=sizes[1] + sizes[2])

    assert deleted == [0]
    assert plog.size_bytes == sizes[1] + sizes[2]
    assert apply_retention(plog, clock(), max_age_s=1000 * HOUR, max_bytes=1) == [3]
    assert [s.base_offset for s in plog.segments] == [6]  # the active segment is never deleted for size


def test_deleted_segments_stay_deleted_after_reopen(logs: LogKit, clock: FakeClock) -> None:
    plog = _three_segments_an_hour_apart(logs, clock)
    apply_retention(plog, clock(), max_age_s=1.5 * HOUR, max_bytes=NO_SIZE_LIMIT)
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered

    assert reopened.log_start_offset == 6
    assert logs.values(reopened) == [b"v6", b"v7", b"v8"]


def _two_segments_stamped(logs: LogKit, timestamp_ms: int) -> PartitionLog:
    """[0, 1) stamped `timestamp_ms` and a newer active segment [1, 2)."""
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"old"], timestamp_ms=timestamp_ms)
    plog.roll()
    logs.append(plog, [b"new"])
    logs.publish(plog)
    return plog


def test_a_segment_exactly_as_old_as_the_max_age_is_kept(logs: LogKit, clock: FakeClock) -> None:
    plog = _two_segments_stamped(logs, clock.ms - 3_600_000)
    assert apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT) == []
    clock.advance(0.001)
    assert apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT) == [0]


def test_an_active_segment_exactly_as_old_as_the_max_age_is_not_rolled(logs: LogKit, clock: FakeClock) -> None:
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"only"], timestamp_ms=clock.ms - 3_600_000)
    logs.publish(plog)
    apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT)
    assert len(plog.segments) == 1
    clock.advance(0.001)
    apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT)
    assert [s.base_offset for s in plog.segments] == [1]


@pytest.mark.parametrize("active", [False, True], ids=["closed", "active"])
def test_records_stamped_at_time_zero_age_out_like_any_other(logs: LogKit, clock: FakeClock, active: bool) -> None:
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"epoch"], timestamp_ms=0)
    if not active:
        plog.roll()
        logs.append(plog, [b"new"])
    logs.publish(plog)
    assert apply_retention(plog, clock(), max_age_s=HOUR, max_bytes=NO_SIZE_LIMIT) == [0]
