"""Crash recovery: torn tails are cut and logged, earlier records survive, non-tail corruption cuts nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from goqueue.storage import batch as batches
from goqueue.storage import log as log_module
from goqueue.storage import segment as segment_module
from goqueue.storage.compaction import compact_log
from goqueue.storage.index import TIME_ENTRY
from goqueue.storage.log import RECOVERY_POINT_FILE, CorruptSegment, PartitionLog

if TYPE_CHECKING:
    from conftest import FakeClock, LogKit

pytestmark = pytest.mark.unit


def _filled(logs: LogKit, n: int = 30, segment_bytes: int = 400) -> tuple[PartitionLog, list[bytes]]:
    """A log of `n` single-record batches (over several segments unless `segment_bytes` is large), flushed."""
    plog = logs.open(segment_bytes=segment_bytes)
    values = [b"value-%03d" % i for i in range(n)]
    for value in values:
        logs.append(plog, [value])
    logs.publish(plog)
    assert len(plog.segments) > 2 or segment_bytes > n * 100
    return plog, values


def _batch_positions(path: Path) -> list[int]:
    return [pos for pos, _ in batches.scan_batches(path.read_bytes())]


def _flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_partial_batch(path: Path) -> int:
    good = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(bytes(batches.build_batch([(None, b"torn" * 50, [])], 1))[:120])
    return good


def _damage_garbage(path: Path) -> int:
    good = path.stat().st_size
    with path.open("ab") as handle:
        handle.write(b"\x00\x17garbage" * 13)
    return good


def _damage_crc_of_last_batch(path: Path) -> int:
    last = _batch_positions(path)[-1]
    _flip(path, path.stat().st_size - 1)  # the last record byte: covered by the CRC
    return last


@pytest.mark.parametrize("damage", [_damage_partial_batch, _damage_garbage, _damage_crc_of_last_batch],
                         ids=["partial-batch", "garbage", "flipped-crc-byte"])
def test_a_torn_tail_is_cut_logged_and_everything_before_it_survives(
    logs: LogKit, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    plog, values = _filled(logs)
    logs.crash(plog)
    tail = logs.last_log_file()
    size_before = tail.stat().st_size
    assert callable(damage)
    good_size = damage(tail)
    damaged_size = tail.stat().st_size
    lost = 1 if good_size < size_before else 0

    with caplog.at_level(logging.WARNING, logger="goqueue.storage.log"):
        reopened = logs.open(segment_bytes=400)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered

    [cut] = reopened.recovery_cuts
    assert cut.position == good_size == tail.stat().st_size
    assert cut.bytes_cut == damaged_size - good_size > 0  # what goqueue_recovery_truncated_bytes counts
    assert cut.segment_base_offset == int(tail.name.removesuffix(".log"))
    assert cut.reason
    assert [r.message for r in caplog.records] == ["log.tail_truncated"]
    assert reopened.log_end_offset == len(values) - lost
    assert logs.values(reopened) == values[:len(values) - lost]
    assert logs.append(reopened, [b"after"]).base_offset == len(values) - lost
    logs.publish(reopened)
    logs.crash(reopened)
    again = logs.open(segment_bytes=400)
    logs.publish(again)  # the owner (a leader in sync alone) publishes what it recovered
    assert again.recovery_cuts == []
    assert logs.values(again) == [*values[:len(values) - lost], b"after"]


def test_a_tail_segment_cut_to_nothing_still_opens(logs: LogKit) -> None:
    plog, values = _filled(logs)
    logs.crash(plog)
    tail = logs.last_log_file()
    records_in_tail = len(_batch_positions(tail))
    tail.write_bytes(b"\xff" * 40)

    reopened = logs.open(segment_bytes=400)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered

    assert tail.stat().st_size == 0
    assert logs.values(reopened) == values[:len(values) - records_in_tail]


@pytest.mark.parametrize("damage", [b"\x01\x02\x03", b"\xff" * 16, b""], ids=["torn", "garbage", "empty"])
def test_corrupt_index_files_are_rebuilt(logs: LogKit, damage: bytes) -> None:
    plog, values = _filled(logs, segment_bytes=600)
    logs.close(plog)  # checkpointed: closed segments are trusted and only their indexes are checked
    first = plog.segments[0]
    index, timeindex = first.offset_index.path, first.time_index.path
    good = (index.read_bytes(), timeindex.read_bytes())
    index.write_bytes(damage)
    timeindex.write_bytes(damage)

    reopened = logs.open(segment_bytes=600)

    assert (index.read_bytes(), timeindex.read_bytes()) == good
    assert logs.values(reopened) == values
    assert [reopened.offset_for_timestamp(0)] == [0]


def test_an_index_pointing_into_the_middle_of_a_batch_is_rebuilt(logs: LogKit) -> None:
    plog, values = _filled(logs, segment_bytes=600)
    logs.close(plog)
    index = plog.segments[0].offset_index.path
    index.write_bytes(index.read_bytes()[:8] + bytes.fromhex("00000002") + (13).to_bytes(4, "big"))

    reopened = logs.open(segment_bytes=600)

    assert logs.values(reopened) == values
    assert all(logs.values(reopened, start=o) == values[o:] for o in range(len(values)))


def test_corruption_before_the_tail_raises_and_changes_no_file(logs: LogKit) -> None:
    plog, _ = _filled(logs)
    logs.close(plog)
    (logs.directory / RECOVERY_POINT_FILE).unlink()  # no checkpoint: every segment is CRC-checked on open
    middle = sorted(logs.directory.glob("*.log"))[1]
    _flip(middle, _batch_positions(middle)[-1] + batches.HEADER_SIZE)
    before = logs.files()

    with pytest.raises(CorruptSegment, match=middle.name):
        logs.open(segment_bytes=400)

    assert logs.files() == before


def test_corruption_in_the_middle_of_the_tail_cuts_from_there(logs: LogKit) -> None:
    plog, values = _filled(logs, segment_bytes=10**6)
    logs.crash(plog)
    tail = logs.last_log_file()
    positions = _batch_positions(tail)
    _flip(tail, positions[10] + batches.HEADER_SIZE)

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)  # the owner (a leader in sync alone) publishes what it recovered

    assert reopened.recovery_cuts[0].position == positions[10]
    assert logs.values(reopened) == values[:10]


def test_leftovers_of_interrupted_operations_are_removed_on_open(logs: LogKit) -> None:
    plog, values = _filled(logs)
    logs.close(plog)
    leftovers = [f"{0:020d}.log.deleted", f"{0:020d}.log.cleaned", f"{0:020d}.index.deleted",
                 "recovery-point.tmp", f"{999_999:020d}.index", f"{999_999:020d}.timeindex"]
    for name in leftovers:
        (logs.directory / name).write_bytes(b"left over")

    reopened = logs.open(segment_bytes=400)

    assert not [name for name in leftovers if (logs.directory / name).exists()]
    assert logs.values(reopened) == values


def test_a_compaction_swap_interrupted_before_new_indexes_recovers(logs: LogKit, clock: object) -> None:
    """Crash after the compacted file replaced the original but before its indexes existed."""
    plog = logs.open(segment_bytes=10**6, index_interval_bytes=32)
    for i in range(20):
        logs.append(plog, [b"v%02d" % i], key=b"k%d" % (i % 3))
    plog.roll()
    logs.append(plog, [b"tail"], key=b"other")
    logs.publish(plog)
    first = plog.segments[0]
    stale_index = first.offset_index.path.read_bytes()
    compact_log(plog, 0.0, tombstone_retention_s=0)
    expected = [(r.offset, r.value) for r in logs.records(plog)]
    logs.close(plog)
    first.offset_index.path.write_bytes(stale_index)  # what the old swap order could leave behind
    first.time_index.path.unlink()

    reopened = logs.open(segment_bytes=10**6, index_interval_bytes=32)

    assert [(r.offset, r.value) for r in logs.records(reopened)] == expected
    for offset, _ in expected:
        assert logs.records(reopened, start=offset)[0].offset == offset


def test_a_compaction_swap_removes_the_old_indexes_before_the_rename(
    logs: LogKit, clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crash right after the rename: the next open must find no index of the old file, and no data lost."""
    plog = logs.open(segment_bytes=10**6, index_interval_bytes=32)
    for i in range(20):
        logs.append(plog, [b"v%02d" % i], key=b"k%d" % (i % 3))
    plog.roll()
    logs.append(plog, [b"tail"], key=b"other")
    logs.publish(plog)

    def killed_after_the_rename(*_args: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(log_module, "Segment", killed_after_the_rename)
    with pytest.raises(SystemExit):
        compact_log(plog, 0.0, tombstone_retention_s=0)
    monkeypatch.undo()
    logs.crash(plog)

    assert sorted(p.name for p in logs.directory.glob(f"{0:020d}.*")) == [f"{0:020d}.log"]
    reopened = logs.open(segment_bytes=10**6, index_interval_bytes=32)
    logs.publish(reopened)
    assert [(r.offset, r.value) for r in logs.records(reopened)] == [
        (17, b"v17"), (18, b"v18"), (19, b"v19"), (20, b"tail")]


def test_a_compacted_copy_that_fails_validation_is_refused_not_cut(logs: LogKit) -> None:
    plog, _ = _filled(logs, n=6, segment_bytes=10**6)
    plog.roll()
    copy = logs.directory / f"{0:020d}.log.cleaned"
    copy.write_bytes(plog.segments[0].read(0, plog.segments[0].size))
    _flip(copy, copy.stat().st_size - 1)
    damaged = copy.read_bytes()

    with pytest.raises(batches.InvalidBatch):
        plog.replace_segment(plog.segments[0], copy)

    assert (logs.directory / f"{0:020d}.log").read_bytes() == damaged, "not one byte cut"


def test_a_closed_segment_whose_last_index_entry_names_the_wrong_offset_is_reindexed(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6, index_interval_bytes=1)
    values = [b"value-%02d" % i for i in range(12)]
    for i in range(0, 9, 3):
        logs.append(plog, values[i:i + 3])
    plog.roll()
    logs.append(plog, values[9:])
    logs.publish(plog)
    logs.close(plog)
    index = plog.segments[0].offset_index.path
    entries = index.read_bytes()
    assert len(entries) == 3 * 8  # (0, p0), (3, p1), (6, p2)
    index.write_bytes(entries[:16] + (4).to_bytes(4, "big") + entries[20:])  # (4, p2): p2 holds 6..8

    reopened = logs.open(segment_bytes=10**6, index_interval_bytes=1)

    assert all(logs.values(reopened, start=o) == values[o:] for o in range(len(values)))
    assert index.read_bytes() == entries


def test_a_segment_deletion_cut_short_by_a_crash_is_finished_on_open(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog, _ = _filled(logs, n=12, segment_bytes=10**6)
    plog.roll()
    logs.append(plog, [b"tail"])
    logs.publish(plog)
    oldest = plog.segments[0]
    real_unlink = Path.unlink

    def killed_before_unlinking(path: Path, missing_ok: bool = False) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(Path, "unlink", killed_before_unlinking)
    with pytest.raises(SystemExit):
        plog.delete_oldest_segment()
    monkeypatch.setattr(Path, "unlink", real_unlink)
    oldest.close()  # the log had let go of it: the process would have died holding it
    logs.crash(plog)
    assert [p.name for p in logs.directory.glob(f"{0:020d}.*")] != [f"{0:020d}.log"], "a rename happened"

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)

    assert not list(logs.directory.glob(f"{0:020d}.*"))
    assert (reopened.log_start_offset, logs.values(reopened)) == (12, [b"tail"])


def _closed_then_active(logs: LogKit, per_segment: int = 6) -> tuple[PartitionLog, list[bytes]]:
    """A closed segment [0, n) indexed at every batch, then an active one; cleanly closed (checkpointed)."""
    plog = logs.open(segment_bytes=10**6, index_interval_bytes=1)
    values = [b"value-%02d" % i for i in range(per_segment + 2)]
    for value in values[:per_segment]:
        logs.append(plog, [value])
    plog.roll()
    for value in values[per_segment:]:
        logs.append(plog, [value])
    logs.publish(plog)
    logs.close(plog)
    return plog, values


def test_a_checkpointed_segment_with_a_bad_index_and_bad_data_is_refused_not_cut(logs: LogKit) -> None:
    plog, _ = _closed_then_active(logs)
    first = plog.segments[0]
    first.offset_index.path.write_bytes(b"\x01")  # forces the rebuild, which must validate strictly
    _flip(first.path, _batch_positions(first.path)[2] + batches.HEADER_SIZE)
    before = logs.files()

    with pytest.raises(CorruptSegment):
        logs.open(segment_bytes=10**6, index_interval_bytes=1)

    assert logs.files() == before


def test_a_checkpointed_segment_cut_short_inside_its_last_batch_is_refused(logs: LogKit) -> None:
    plog, _ = _closed_then_active(logs)
    first = plog.segments[0].path
    with first.open("r+b") as handle:
        handle.truncate(first.stat().st_size - 3)

    with pytest.raises(CorruptSegment):
        logs.open(segment_bytes=10**6, index_interval_bytes=1)


def test_a_time_index_entry_past_its_segment_is_rebuilt(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6)
    stamps = [logs.clock.ms + 1_000 * i for i in range(9)]
    for i, stamp in enumerate(stamps):
        logs.append(plog, [b"v%d" % i], timestamp_ms=stamp)
        if i in (2, 5):
            plog.roll()
    logs.publish(plog)
    logs.close(plog)
    middle = plog.segments[1].time_index.path  # [3, 6): relative offsets 0..2
    good = middle.read_bytes()
    middle.write_bytes(good + TIME_ENTRY.pack(stamps[-1] + 1_000, 3))  # names offset 6, the next segment's

    reopened = logs.open(segment_bytes=10**6)

    assert middle.read_bytes() == good
    assert reopened.offset_for_timestamp(stamps[-1] + 1) == reopened.log_end_offset


def test_a_reopened_segment_made_active_again_still_ages_from_its_first_record(
    logs: LogKit, clock: FakeClock
) -> None:
    plog = logs.open(segment_bytes=10**6, segment_age_s=60)
    logs.append(plog, [b"a"])
    plog.roll()
    logs.append(plog, [b"b"])
    logs.publish(plog)
    logs.close(plog)
    reopened = logs.open(segment_bytes=10**6, segment_age_s=60)
    reopened.truncate_to(1)  # the closed segment [0, 1) is the active one again
    clock.advance(61)

    logs.append(reopened, [b"late"])

    assert [s.base_offset for s in reopened.segments] == [0, 1]


def test_deleting_a_partition_closes_the_segments_retention_retired(logs: LogKit) -> None:
    plog = PartitionLog.open(logs.directory, logs.config(segment_bytes=10**6), logs.clock)
    logs.append(plog, [b"a"])
    plog.roll()
    logs.append(plog, [b"b"])
    logs.publish(plog)
    retired = plog.delete_oldest_segment()
    assert retired is not None

    plog.delete_files()

    assert retired.offset_index._file.closed
    assert retired.time_index._file.closed


def test_a_partition_deletion_cut_short_leaves_a_directory_the_broker_sweeps(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = PartitionLog.open(logs.directory, logs.config(segment_bytes=10**6), logs.clock)
    logs.append(plog, [b"a"])
    logs.publish(plog)
    plog.checkpoint_high_watermark()  # a file that stays in the directory until after its rename
    real_unlink = Path.unlink
    in_swept_directory: list[str] = []

    def killed_while_emptying_it(path: Path, missing_ok: bool = False) -> None:
        if path.parent != logs.directory:  # segment files go first; the directory's own files after the rename
            in_swept_directory.append(path.parent.name)
            raise SystemExit("killed")
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", killed_while_emptying_it)
    with pytest.raises(SystemExit):
        plog.delete_files()

    assert in_swept_directory == [f"{logs.directory.name}.deleted"], "broker start-up removes <dir>.deleted"


def test_recovery_reads_a_segment_in_chunks_without_cutting_at_their_edges(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan reads SCAN_CHUNK_BYTES at a time (4 MiB); batches straddle the chunk edges. A small chunk makes
    every kind of edge happen: a header split, a batch split, a batch larger than a chunk."""
    monkeypatch.setattr(segment_module, "SCAN_CHUNK_BYTES", 150)
    plog = logs.open(segment_bytes=10**6)
    values = [b"v" * size for size in (10, 80, 300, 5, 140, 61, 1, 200, 90, 30)]
    for value in values:
        logs.append(plog, [value])
    logs.publish(plog)
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)

    assert reopened.recovery_cuts == []
    assert logs.values(reopened) == values


def test_a_recovered_tail_segment_after_the_first_is_indexed_at_its_own_offsets(logs: LogKit) -> None:
    plog = logs.open(segment_bytes=10**6, index_interval_bytes=1)
    stamps = [logs.clock.ms + 1_000 * i for i in range(12)]
    values = [b"value-%02d" % i for i in range(12)]
    for i, (value, stamp) in enumerate(zip(values, stamps, strict=True)):
        logs.append(plog, [value], timestamp_ms=stamp)
        if i == 4:
            plog.roll()
    logs.publish(plog)
    logs.crash(plog)  # the tail segment [5, 12) is scanned and re-indexed on open

    reopened = logs.open(segment_bytes=10**6, index_interval_bytes=1)
    logs.publish(reopened)

    assert all(logs.values(reopened, start=o) == values[o:] for o in range(len(values)))
    assert [reopened.offset_for_timestamp(stamp) for stamp in stamps] == list(range(12))


def test_a_segment_based_past_two_to_the_32_recovers_whole(logs: LogKit) -> None:
    """Offsets are 64-bit; only the offset *within* a segment is bounded by the index's u32."""
    base = 2**32 + 10
    plog = logs.open(segment_bytes=10**6)
    plog.roll(base_offset=base)  # an empty log jumping ahead, as a follower of a long-lived partition does
    for i in range(3):
        logs.append(plog, [b"v%d" % i])
    logs.publish(plog)
    logs.crash(plog)

    reopened = logs.open(segment_bytes=10**6)
    logs.publish(reopened)

    assert reopened.recovery_cuts == []
    assert [r.offset for r in logs.records(reopened)] == [base, base + 1, base + 2]


def test_a_new_partition_directory_is_made_durable_in_its_parent(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the directory changes its parent: without an fsync of the parent, a power loss can take the whole
    directory (and every record in it) away."""
    synced: list[Path] = []
    real = log_module.fsync_directory
    monkeypatch.setattr(log_module, "fsync_directory", lambda d: (synced.append(d), real(d))[1])

    first = logs.open()
    assert logs.directory.parent in synced
    logs.close(first)
    synced.clear()
    logs.open()
    assert logs.directory.parent not in synced, "an existing directory needs no new entry"


def test_a_checkpoint_write_cut_short_leaves_the_old_value_and_nothing_else(
    logs: LogKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    plog = logs.open()
    logs.append(plog, [b"a"])
    logs.publish(plog)
    plog.checkpoint_high_watermark()
    logs.append(plog, [b"b"])
    logs.publish(plog)

    def killed_before_the_rename(self: Path, target: Path) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(Path, "replace", killed_before_the_rename)
    with pytest.raises(SystemExit):
        plog.checkpoint_high_watermark()
    monkeypatch.undo()
    logs.crash(plog)

    reopened = logs.open()
    assert sorted(p.name for p in logs.directory.iterdir() if not p.name.startswith("0")) == [
        "replication-offset-checkpoint"], "the temp file of the interrupted write is swept"
    assert reopened.high_watermark == 1
