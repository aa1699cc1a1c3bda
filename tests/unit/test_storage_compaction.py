"""Compaction: the newest record per key wins, offsets never change, tombstones outlive their retention only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from goqueue.storage import batch as batches
from goqueue.storage.compaction import compact_log
from goqueue.storage.log import AppendResult, PartitionLog

if TYPE_CHECKING:
    from conftest import FakeClock, LogKit

pytestmark = pytest.mark.unit

DAY = 86400.0


def _keyed(logs: LogKit, entries: list[tuple[bytes, bytes | None]], segment_bytes: int = 10**6) -> PartitionLog:
    """One record per batch, a roll every 4 records, and an active segment holding the last few."""
    plog = logs.open(segment_bytes=segment_bytes)
    for n, (key, value) in enumerate(entries):
        logs.append(plog, [value], key=key)
        if n % 4 == 3:
            plog.roll()
    logs.publish(plog)
    return plog


def _state(logs: LogKit, plog: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    return [(r.offset, r.key, r.value) for r in logs.records(plog)]


HISTORY = [(b"a", b"a1"), (b"b", b"b1"), (b"a", b"a2"), (b"c", b"c1"), (b"b", b"b2"), (b"a", b"a3"),
           (b"c", b"c2"), (b"d", b"d1"), (b"a", b"a4"), (b"e", b"e1")]


def test_the_newest_record_per_key_wins_and_offsets_do_not_change(logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, HISTORY)
    leo, active_before = plog.log_end_offset, _state(logs, plog)[8:]

    result = compact_log(plog, clock(), tombstone_retention_s=DAY)

    state = _state(logs, plog)
    assert [(o, k, v) for o, k, v in state if o < 8] == [(4, b"b", b"b2"), (6, b"c", b"c2"), (7, b"d", b"d1")]
    assert state[-2:] == active_before  # the active segment (offsets 8, 9) is never rewritten
    assert result.records_removed == 5
    assert result.segments_rewritten == 2
    assert result.bytes_after < result.bytes_before
    assert plog.log_end_offset == leo
    assert logs.append(plog, [b"a5"], key=b"a").base_offset == leo


def test_compaction_survives_reopen_and_is_idempotent(logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, HISTORY)
    compact_log(plog, clock(), tombstone_retention_s=DAY)
    expected = _state(logs, plog)
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered

    assert reopened.recovery_cuts == []
    assert _state(logs, reopened) == expected
    assert compact_log(reopened, clock(), tombstone_retention_s=DAY).records_removed == 0


def test_tombstones_are_kept_until_their_retention_then_dropped(logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, [(b"a", b"a1"), (b"b", b"b1"), (b"a", None), (b"c", b"c1"), (b"z", b"z1")])
    plog.roll()
    logs.append(plog, [b"z2"], key=b"z")
    logs.publish(plog)

    compact_log(plog, clock(), tombstone_retention_s=DAY)
    assert [(o, k, v) for o, k, v in _state(logs, plog)] == [
        (1, b"b", b"b1"), (2, b"a", None), (3, b"c", b"c1"), (5, b"z", b"z2")]

    clock.advance(DAY + 1)
    compact_log(plog, clock(), tombstone_retention_s=DAY)
    assert [(o, k, v) for o, k, v in _state(logs, plog)] == [(1, b"b", b"b1"), (3, b"c", b"c1"), (5, b"z", b"z2")]


def test_records_above_the_high_watermark_are_not_considered(logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, HISTORY[:8])  # two closed segments, an empty active one
    plog.high_watermark = 4  # the second closed segment is not yet published

    compact_log(plog, clock(), tombstone_retention_s=DAY)

    plog.high_watermark = plog.log_end_offset
    assert [v for _, _, v in _state(logs, plog)] == [b"b1", b"a2", b"c1", b"b2", b"a3", b"c2", b"d1"]


def test_a_crash_between_writing_the_copy_and_the_swap_leaves_the_original(
    logs: LogKit, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = _keyed(logs, HISTORY)
    original = _state(logs, plog)
    files_before = logs.files()

    def crash_before_rename(self: PartitionLog, old: object, new_path: Path) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(PartitionLog, "replace_segment", crash_before_rename)
    with pytest.raises(SystemExit):
        compact_log(plog, clock(), tombstone_retention_s=DAY)
    assert list(logs.directory.glob("*.cleaned"))
    logs.crash(plog)
    monkeypatch.undo()

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered

    assert not list(logs.directory.glob("*.cleaned"))
    assert _state(logs, reopened) == original
    assert {k: v for k, v in logs.files().items() if k.endswith(".log")} == {
        k: v for k, v in files_before.items() if k.endswith(".log")}


def test_idempotent_producer_state_survives_compaction(logs: LogKit, clock: FakeClock) -> None:
    """A batch whose last record was compacted away still spans its offsets and sequences."""
    plog = logs.open(segment_bytes=10**6)

    def send(records: list[tuple[bytes, bytes]], seq: int, target: PartitionLog) -> AppendResult:
        batch = batches.build_batch([(k, v, []) for k, v in records], clock.ms,
                                    producer_id=9, producer_epoch=0, base_sequence=seq)
        return target.append(batch, leader_epoch=0)

    first = send([(b"j", b"j1"), (b"k", b"k1")], 0, plog)
    plog.roll()
    send([(b"k", b"k2")], 2, plog)
    logs.publish(plog)
    assert compact_log(plog, clock(), tombstone_retention_s=DAY).records_removed == 1
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered
    retry = send([(b"j", b"j1"), (b"k", b"k1")], 0, reopened)

    assert (retry.duplicate, retry.base_offset, retry.last_offset) == (True, first.base_offset, first.last_offset)
    assert reopened.segments[0].next_offset == 2
    assert [(r.offset, r.value) for r in logs.records(reopened)] == [(0, b"j1"), (2, b"k2")]


def test_records_in_the_middle_of_a_batch_are_judged_at_their_own_offsets(logs: LogKit, clock: FakeClock) -> None:
    plog = logs.open(segment_bytes=10**6)
    plog.append(batches.build_batch([(b"a", b"a1", []), (b"b", b"b1", []), (b"a", b"a2", [])], clock.ms), 0)
    plog.append(batches.build_batch([(b"c", b"c1", []), (b"b", b"b2", [])], clock.ms), 0)
    plog.roll()
    logs.publish(plog)

    result = compact_log(plog, clock(), tombstone_retention_s=DAY)

    assert _state(logs, plog) == [(2, b"a", b"a2"), (3, b"c", b"c1"), (4, b"b", b"b2")]
    assert result.records_removed == 2


def test_a_segment_with_nothing_to_remove_does_not_stop_compaction_of_the_next(
        logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, [(b"a", b"a1"), (b"b", b"b1"), (b"c", b"c1"), (b"d", b"d1"),
                         (b"e", b"e1"), (b"e", b"e2"), (b"f", b"f1"), (b"f", b"f2"), (b"g", b"g1")])
    sizes = [s.size for s in plog.segments[:2]]

    result = compact_log(plog, clock(), tombstone_retention_s=DAY)

    assert [v for _, _, v in _state(logs, plog)] == [b"a1", b"b1", b"c1", b"d1", b"e2", b"f2", b"g1"]
    assert (result.segments_rewritten, result.records_removed) == (1, 2)
    assert (result.bytes_before, result.bytes_after) == (sizes[1], plog.segments[1].size)


def test_the_byte_counts_add_up_over_every_rewritten_segment(logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, [(b"a", b"a1"), (b"b", b"b1"), (b"x", b"x1"), (b"y", b"y1"),
                         (b"a", b"a2"), (b"c", b"c1"), (b"c", b"c2"), (b"z", b"z1"), (b"b", b"b2")])
    before = sum(s.size for s in plog.segments[:2])

    result = compact_log(plog, clock(), tombstone_retention_s=DAY)

    assert (result.segments_rewritten, result.bytes_before) == (2, before)
    assert all(s.size for s in plog.segments[:2]), "both rewritten segments keep records"
    assert result.bytes_after == sum(s.size for s in plog.segments[:2])


def test_nothing_is_compacted_while_every_closed_segment_is_above_the_high_watermark(
        logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, HISTORY[:8])
    plog.high_watermark = 3

    result = compact_log(plog, clock(), tombstone_retention_s=DAY)

    assert (result.segments_rewritten, result.records_removed) == (0, 0)


def test_a_tombstone_exactly_as_old_as_its_retention_is_kept(logs: LogKit, clock: FakeClock) -> None:
    plog = _keyed(logs, [(b"a", b"a1"), (b"a", None), (b"b", b"b1"), (b"c", b"c1"), (b"z", b"z1")])
    tombstone_ms = batches.read_header(plog.read(1, 1)).max_timestamp_ms

    compact_log(plog, tombstone_ms / 1000 + DAY, tombstone_retention_s=DAY)
    assert (1, b"a", None) in _state(logs, plog)

    compact_log(plog, tombstone_ms / 1000 + DAY + 0.001, tombstone_retention_s=DAY)
    assert (1, b"a", None) not in _state(logs, plog)


def test_a_rewritten_batch_keeps_its_attributes(logs: LogKit, clock: FakeClock) -> None:
    plog = logs.open(segment_bytes=10**6)
    rows = [(0, 0, b"a", b"a1", []), (1, 0, b"b", b"b1", [])]
    plog.append(batches.build_batch_from_rows(rows, clock.ms, clock.ms, attributes=batches.CONTROL_FLAG), 0)
    logs.append(plog, [b"a2"], key=b"a")
    plog.roll()
    logs.publish(plog)

    compact_log(plog, clock(), tombstone_retention_s=DAY)

    first = batches.read_header(plog.read(0, 10**6))
    assert (first.record_count, first.attributes & batches.CONTROL_FLAG) == (1, batches.CONTROL_FLAG)
