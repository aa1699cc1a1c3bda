"""PartitionLog: append and read across segment rolls, the high watermark, fetch sizes, offsets, truncation, a
follower's appends as the leader stamped them, and a partition's files removed with its topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from goqueue.errors import OffsetOutOfRange
from goqueue.storage import batch as batches
from goqueue.storage.batch import InvalidBatch
from goqueue.storage.log import RETIRED_GRACE_S, PartitionLog

if TYPE_CHECKING:
    from conftest import FakeClock, LogKit

pytestmark = pytest.mark.unit


def _values(n: int, size: int = 40) -> list[bytes]:
    return [f"{i:04d}".encode() + b"x" * (size - 4) for i in range(n)]


def test_append_assigns_contiguous_offsets_and_rolls_by_size(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=600)
    values = _values(60)

    results = [logs.append(plog, values[i:i + 3]) for i in range(0, 60, 3)]
    logs.publish(plog)

    assert [(r.base_offset, r.last_offset) for r in results] == [(i, i + 2) for i in range(0, 60, 3)]
    assert len(plog.segments) > 3
    for older, newer in zip(plog.segments, plog.segments[1:], strict=False):
        assert older.next_offset == newer.base_offset
        assert older.size <= 600
    assert sorted(p.name for p in plog.directory.glob("*.log")) == [
        f"{s.base_offset:020d}.log" for s in plog.segments]
    assert logs.values(plog) == values


def test_every_offset_reads_from_the_batch_holding_it(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=500, index_interval_bytes=64)
    values = _values(40)
    for i in range(0, 40, 4):
        logs.append(plog, values[i:i + 4])
    logs.publish(plog)

    for offset in range(40):
        data = plog.read(offset, 10**6)
        first = batches.read_header(data)
        assert first.base_offset <= offset < first.next_offset
        assert logs.values(plog, start=offset) == values[offset:]


def test_rolls_by_age_with_an_injected_clock(logs: LogKit, clock: FakeClock) -> None:
    plog = logs.open(segment_bytes=10**6, segment_age_s=60)
    logs.append(plog, [b"a"])
    clock.advance(30)
    logs.append(plog, [b"b"])
    assert len(plog.segments) == 1

    clock.advance(31)
    logs.append(plog, [b"c"])

    assert [s.base_offset for s in plog.segments] == [0, 2]
    logs.publish(plog)
    assert logs.values(plog) == [b"a", b"b", b"c"]


def test_reads_stop_at_the_high_watermark(logs: LogKit) -> None:
    plog = logs.open()
    for value in _values(5):
        logs.append(plog, [value])
    plog.flush()
    plog.high_watermark = 3

    data = plog.read(0, 10**6)

    assert [h.base_offset for _, h in batches.iter_headers(data)] == [0, 1, 2]
    assert plog.read(3, 10**6) == b""
    assert plog.read(5, 10**6) == b""  # the log end offset itself is in range, just empty
    assert [h.base_offset for _, h in batches.iter_headers(plog.read(3, 10**6, upto=5))] == [3, 4]


def test_max_bytes_returns_whole_batches_and_always_at_least_one(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6)
    for value in _values(6, size=100):
        logs.append(plog, [value])
    big = logs.append(plog, [b"B" * 5_000])
    logs.publish(plog)
    batch_size = batches.read_header(plog.read(0, 1)).size

    two = plog.read(0, 2 * batch_size + batch_size // 2)
    one = plog.read(0, 1)
    huge = plog.read(big.base_offset, 10)

    assert [h.base_offset for _, h in batches.iter_headers(two)] == [0, 1]
    assert len(two) == 2 * batch_size
    assert [h.base_offset for _, h in batches.iter_headers(one)] == [0]
    assert len(one) == batch_size
    assert [r.value for r in batches.decode_records(huge)] == [b"B" * 5_000]


def test_a_short_budget_never_skips_a_large_batch_in_the_next_segment(logs: LogKit) -> None:
    """Regression: a leftover budget too small for segment 2's first batch used to continue into segment 3."""
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"a" * 10])
    plog.roll()
    logs.append(plog, [b"b" * 2_000])
    plog.roll()
    logs.append(plog, [b"c" * 10])
    logs.publish(plog)
    small = batches.read_header(plog.read(0, 1)).size

    data = plog.read(0, small + 150)

    assert [h.base_offset for _, h in batches.iter_headers(data)] == [0]
    assert logs.values(plog, start=0) == [b"a" * 10, b"b" * 2_000, b"c" * 10]


def test_offsets_outside_the_log_are_out_of_range(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6)
    for value in _values(4):
        logs.append(plog, [value])
    plog.roll()
    logs.append(plog, [b"tail"])
    logs.publish(plog)
    assert plog.delete_oldest_segment() is not None

    with pytest.raises(OffsetOutOfRange) as below:
        plog.read(3, 100)
    with pytest.raises(OffsetOutOfRange):
        plog.read(6, 100)

    assert below.value.details == {"log_start_offset": 4, "log_end_offset": 5}
    assert logs.values(plog) == [b"tail"]


def test_offset_for_timestamp_finds_the_first_batch_reaching_it(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=200)
    for i in range(8):
        logs.append(plog, [b"v%d" % i], timestamp_ms=1_000 * (i + 1))
    logs.publish(plog)
    assert len(plog.segments) > 2

    assert plog.offset_for_timestamp(0) == 0
    assert plog.offset_for_timestamp(1_000) == 0
    assert plog.offset_for_timestamp(1_001) == 1
    assert plog.offset_for_timestamp(5_500) == 5
    assert plog.offset_for_timestamp(8_000) == 7
    assert plog.offset_for_timestamp(8_001) == plog.log_end_offset == 8


def test_truncate_then_append_reuses_the_offsets(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=300)
    values = _values(12)
    for value in values:
        logs.append(plog, [value])
    logs.publish(plog)
    segments_before = len(plog.segments)

    plog.truncate_to(4)

    assert (plog.log_end_offset, plog.high_watermark, plog.flushed_offset) == (4, 4, 4)
    assert len(plog.segments) < segments_before
    assert sorted(p.name for p in plog.directory.glob("*.log")) == [
        f"{s.base_offset:020d}.log" for s in plog.segments]
    assert logs.append(plog, [b"new"]).base_offset == 4
    logs.publish(plog)
    assert logs.values(plog) == [*values[:4], b"new"]

    logs.close(plog)
    reopened = logs.open(segment_bytes=300)
    assert logs.values(reopened) == [*values[:4], b"new"]


def test_truncating_inside_a_batch_removes_the_whole_batch(logs: LogKit) -> None:
    plog = logs.open()
    logs.append(plog, [b"a", b"b", b"c"])
    logs.append(plog, [b"d", b"e", b"f"])
    logs.publish(plog)

    plog.truncate_to(4)

    assert plog.log_end_offset == 3
    assert logs.append(plog, [b"g"]).base_offset == 3
    logs.publish(plog)
    assert logs.values(plog) == [b"a", b"b", b"c", b"g"]


def test_rolling_an_empty_active_segment_is_a_no_op(logs: LogKit) -> None:
    plog = logs.open()
    logs.append(plog, [b"a"])
    plog.roll()
    plog.roll()

    assert [s.base_offset for s in plog.segments] == [0, 1]


def test_clean_close_checkpoints_and_reopens_everything(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=300)
    values = _values(20)
    for value in values:
        logs.append(plog, [value])
    logs.publish(plog)
    logs.close(plog)

    reopened = logs.open(segment_bytes=300)

    assert reopened.recovery_cuts == []
    assert (reopened.high_watermark, reopened.flushed_offset, reopened.log_end_offset) == (20, 20, 20)
    assert logs.values(reopened) == values
    assert logs.append(reopened, [b"more"]).base_offset == 20


def test_a_reopened_log_exposes_only_what_its_high_watermark_checkpoint_says(logs: LogKit) -> None:
    """A follower holds records its leader wrote but the in-sync replicas never confirmed; after a restart it must
    not expose them (it may be elected, and they may vanish at the next leader change)."""
    plog = logs.open(segment_bytes=300)
    logs.append(plog, [b"committed-0", b"committed-1"])
    logs.publish(plog)
    assert plog.checkpoint_high_watermark()
    assert not plog.checkpoint_high_watermark()  # unchanged: nothing written
    logs.append(plog, [b"uncommitted-2", b"uncommitted-3"])
    plog.flush()  # durable on this replica, but the high watermark stays at 2
    logs.crash(plog)

    reopened = logs.open(segment_bytes=300)

    assert (reopened.high_watermark, reopened.log_end_offset) == (2, 4)
    assert logs.values(reopened) == [b"committed-0", b"committed-1"]


def test_a_truncation_below_the_checkpoint_lowers_it(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6)
    for value in (b"a", b"b", b"c"):
        logs.append(plog, [value])
    logs.publish(plog)
    plog.checkpoint_high_watermark()
    plog.truncate_to(1)
    logs.append(plog, [b"other-1", b"other-2"])  # divergent records where the checkpoint pointed
    plog.flush()
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)

    assert (reopened.high_watermark, reopened.log_end_offset) == (1, 3)


def test_a_missing_checkpoint_exposes_nothing_until_the_owner_publishes(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"a", b"b"])
    logs.publish(plog)
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)

    assert (reopened.high_watermark, reopened.log_end_offset) == (0, 2)
    logs.publish(reopened)
    assert logs.values(reopened) == [b"a", b"b"]


def _stamped_log(logs: LogKit) -> tuple[PartitionLog, list[int]]:
    """Offsets 0-2 in a closed segment, 3-6 in the active one, each record a second newer than the one before
    (and all of them younger than the segment age, so only the explicit roll splits them)."""
    plog = logs.open(segment_bytes=10**6)
    stamps = [logs.clock.ms + 1_000 * i for i in range(7)]
    for i, stamp in enumerate(stamps):
        logs.append(plog, [b"v%d" % i], timestamp_ms=stamp)
        if i == 2:
            plog.roll()
    logs.publish(plog)
    assert [(s.base_offset, s.next_offset) for s in plog.segments] == [(0, 3), (3, 7)]
    return plog, stamps


def test_offset_for_timestamp_inside_a_later_segment(logs: LogKit) -> None:
    plog, stamps = _stamped_log(logs)
    assert [plog.offset_for_timestamp(stamp) for stamp in stamps] == list(range(7))


def test_a_truncation_forgets_the_timestamps_of_what_it_removed(logs: LogKit) -> None:
    plog, stamps = _stamped_log(logs)

    plog.truncate_to(5)

    assert plog.offset_for_timestamp(stamps[4]) == 4
    assert plog.offset_for_timestamp(stamps[5]) == plog.log_end_offset == 5
    assert plog.offset_for_timestamp(stamps[6]) == 5


def test_a_segment_truncated_to_nothing_ages_from_its_next_record(logs: LogKit, clock: FakeClock) -> None:
    plog = logs.open(segment_bytes=10**6, segment_age_s=60)
    logs.append(plog, [b"removed"])
    plog.truncate_to(0)
    clock.advance(61)

    logs.append(plog, [b"first"])
    logs.append(plog, [b"second"])

    assert [s.base_offset for s in plog.segments] == [0], "the removed record's age does not count"
    clock.advance(61)
    logs.append(plog, [b"third"])
    assert [s.base_offset for s in plog.segments] == [0, 2]


def test_a_segment_truncated_in_part_still_ages_from_its_first_record(logs: LogKit, clock: FakeClock) -> None:
    plog = logs.open(segment_bytes=10**6, segment_age_s=60)
    logs.append(plog, [b"kept"])
    logs.append(plog, [b"removed"])
    plog.truncate_to(1)
    clock.advance(61)

    logs.append(plog, [b"late"])

    assert [s.base_offset for s in plog.segments] == [0, 1]


def _leader_batches(logs: LogKit, count: int, size: int = 40, **producer: int) -> bytes:
    """`count` one-record batches as a leader's log holds them (stamped offsets 0.., epoch 3), read back whole."""
    leader = logs.open(logs.tmp_path / "leader-0", segment_bytes=10**6)
    for i in range(count):
        logs.append(leader, [f"{i:04d}".encode() + b"x" * (size - 4)], **producer)
    logs.publish(leader)
    return leader.read(0, 10**7)


def test_a_follower_keeps_the_leaders_offsets_and_epochs(logs: LogKit) -> None:
    data = _leader_batches(logs, 6)
    follower = logs.open()

    fourth = [pos for pos, _ in batches.iter_headers(data)][3]  # two fetches, whole batches each

    assert follower.append_replicated(data[:fourth]) == follower.log_end_offset == 3
    assert follower.append_replicated(data[fourth:]) == follower.log_end_offset == 6
    logs.publish(follower)
    held = follower.read(0, 10**7)
    assert held == data, "byte for byte what the leader holds"
    assert {h.leader_epoch for _, h in batches.iter_headers(held)} == {3}


def test_a_follower_refuses_a_batch_below_its_log_end_and_writes_nothing(logs: LogKit) -> None:
    data = _leader_batches(logs, 4)
    follower = logs.open()
    follower.append_replicated(data)
    files = logs.files()

    with pytest.raises(InvalidBatch, match="below the log end 4"):
        follower.append_replicated(data)

    assert follower.log_end_offset == 4
    assert logs.files() == files


def test_a_follower_rolls_its_segments_at_the_leaders_batch_boundaries(logs: LogKit) -> None:
    data = _leader_batches(logs, 12)
    follower = logs.open(segment_bytes=300)

    follower.append_replicated(data)

    assert len(follower.segments) > 2
    for older, newer in zip(follower.segments, follower.segments[1:], strict=False):
        assert older.next_offset == newer.base_offset
        assert older.size <= 300
    logs.close(follower)
    reopened = logs.open(segment_bytes=300)
    logs.publish(reopened)
    assert reopened.read(0, 10**7) == data


def test_a_follower_that_becomes_leader_recognises_a_retry_of_a_replicated_batch(logs: LogKit) -> None:
    data = _leader_batches(logs, 1, producer_id=7, producer_epoch=0, base_sequence=0)
    follower = logs.open()
    follower.append_replicated(data)
    retry = batches.build_batch([(None, b"0000" + b"x" * 36, [])], logs.clock.ms, producer_id=7, base_sequence=0)

    result = follower.append(retry, leader_epoch=4)

    assert (result.base_offset, result.last_offset, result.duplicate) == (0, 0, True)
    assert follower.log_end_offset == 1


def test_a_corrupt_replicated_batch_is_refused_after_the_whole_ones_before_it(logs: LogKit) -> None:
    data = bytearray(_leader_batches(logs, 3))
    data[-1] ^= 0xFF
    follower = logs.open()

    with pytest.raises(InvalidBatch, match="CRC mismatch"):
        follower.append_replicated(bytes(data))

    assert follower.log_end_offset == 2


def test_deleting_a_partition_removes_its_directory(logs: LogKit) -> None:
    plog = PartitionLog.open(logs.directory, logs.config(segment_bytes=300), logs.clock)  # not the kit's: deleted
    logs.append(plog, [b"a" * 200])
    logs.append(plog, [b"b" * 200])
    logs.publish(plog)
    plog.checkpoint_high_watermark()
    assert len(plog.segments) == 2

    plog.delete_files()

    assert sorted(p.name for p in logs.tmp_path.iterdir()) == []
    assert plog.segments == []


def test_the_checkpoint_files_hold_eight_byte_big_endian_offsets(logs: LogKit) -> None:
    """The on-disk format of recovery-point and replication-offset-checkpoint (docs/ARCHITECTURE.md)."""
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"a"])
    plog.roll()
    logs.append(plog, [b"b"])
    logs.publish(plog)
    plog.checkpoint_high_watermark()

    assert (logs.directory / "recovery-point").read_bytes() == (1).to_bytes(8, "big")
    assert (logs.directory / "replication-offset-checkpoint").read_bytes() == (2).to_bytes(8, "big")


def test_a_retired_segment_stays_readable_for_the_grace_period(logs: LogKit, clock: FakeClock) -> None:
    """A reader on the event loop may still hold a segment retention just deleted: its descriptors stay open for
    RETIRED_GRACE_S, so that reader never reads a closed (or reused) descriptor."""
    plog = logs.open(segment_bytes=10**6)
    logs.append(plog, [b"old"])
    plog.roll()
    logs.append(plog, [b"new"])
    logs.publish(plog)
    retired = plog.delete_oldest_segment()
    assert retired is not None

    clock.advance(RETIRED_GRACE_S)
    plog.close_retired()
    assert [r.value for r in batches.decode_records(retired.read(0, retired.size))] == [b"old"]

    clock.advance(0.001)
    plog.close_retired()
    assert retired.offset_index._file.closed


def test_a_read_across_segments_stops_within_its_byte_budget(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6)
    for value in (b"a" * 60, b"b" * 60, b"c" * 60):
        logs.append(plog, [value])
        plog.roll()
    logs.publish(plog)
    size = plog.segments[0].size

    data = plog.read(0, 2 * size + size // 2)

    assert [h.base_offset for _, h in batches.iter_headers(data)] == [0, 1]
