"""Sparse offset and time indexes: lookups, what a valid file is, truncation and wholesale rebuild."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from goqueue.storage.index import OFFSET_ENTRY, TIME_ENTRY, OffsetIndex, TimeIndex

pytestmark = pytest.mark.unit


@pytest.fixture
def offset_index(tmp_path: Path) -> Iterator[OffsetIndex]:
    index = OffsetIndex(tmp_path / "0.index")
    yield index
    index.close()


@pytest.fixture
def time_index(tmp_path: Path) -> Iterator[TimeIndex]:
    index = TimeIndex(tmp_path / "0.timeindex")
    yield index
    index.close()


def test_offset_lookup_finds_the_largest_entry_at_or_below(offset_index: OffsetIndex) -> None:
    assert offset_index.lookup(5) == 0  # nothing indexed yet: scan from the start
    for rel, pos in [(0, 0), (10, 500), (20, 1000)]:
        offset_index.append(rel, pos)

    assert [offset_index.lookup(r) for r in (0, 9, 10, 19, 20, 10**6)] == [0, 0, 500, 500, 1000, 1000]


def test_offset_index_reloads_what_it_wrote(tmp_path: Path, offset_index: OffsetIndex) -> None:
    for rel, pos in [(0, 0), (10, 500)]:
        offset_index.append(rel, pos)
    offset_index.flush()

    reloaded = OffsetIndex(offset_index.path)
    try:
        assert reloaded.load(log_size=600)
        assert (list(reloaded.offsets), list(reloaded.positions)) == ([0, 10], [0, 500])
    finally:
        reloaded.close()


@pytest.mark.parametrize(("entries", "tail", "log_size"), [
    ([(0, 0), (10, 500)], b"\x01", 600),    # a torn entry
    ([(0, 0), (10, 500), (5, 700)], b"", 800),  # offsets go backwards
    ([(0, 0), (10, 500)], b"", 400),         # points past the log
    ([(3, 64)], b"", 400),                   # no entry for the first batch at position 0
    ([], b"", 400),                          # an empty index next to a non-empty log
], ids=["torn", "unsorted", "past-log", "no-first-entry", "empty"])
def test_an_inconsistent_offset_index_does_not_load(
    tmp_path: Path, entries: list[tuple[int, int]], tail: bytes, log_size: int
) -> None:
    path = tmp_path / "1.index"
    path.write_bytes(b"".join(OFFSET_ENTRY.pack(*e) for e in entries) + tail)
    index = OffsetIndex(path)
    try:
        assert not index.load(log_size)
        assert len(index.offsets) == 0  # a failed load leaves nothing half-loaded
    finally:
        index.close()


def test_offset_index_truncation_drops_entries_at_or_past_the_cut(offset_index: OffsetIndex) -> None:
    for rel, pos in [(0, 0), (10, 500), (20, 1000)]:
        offset_index.append(rel, pos)

    offset_index.truncate_after_position(500)

    assert list(offset_index.positions) == [0]
    assert offset_index.path.stat().st_size == OFFSET_ENTRY.size


def test_offset_index_rebuild_replaces_the_file(offset_index: OffsetIndex) -> None:
    offset_index.append(0, 0)
    offset_index.append(7, 300)

    offset_index.rebuild(array("q", [0, 4]), array("q", [0, 200]))
    offset_index.flush()

    assert offset_index.path.read_bytes() == OFFSET_ENTRY.pack(0, 0) + OFFSET_ENTRY.pack(4, 200)


def test_time_index_records_only_growing_maxima(time_index: TimeIndex) -> None:
    for ts, rel in [(1_000, 0), (900, 1), (2_000, 2), (2_000, 3), (3_000, 5)]:
        time_index.maybe_append(ts, rel)

    assert list(time_index.timestamps) == [1_000, 2_000, 3_000]
    assert time_index.max_timestamp_ms == 3_000
    assert [time_index.lookup(t) for t in (0, 1_000, 1_001, 2_000, 2_500, 3_000, 3_001)] == [0, 0, 2, 2, 5, 5, None]


def test_time_index_load_checks_order_and_range(tmp_path: Path) -> None:
    path = tmp_path / "2.timeindex"
    path.write_bytes(TIME_ENTRY.pack(1_000, 0) + TIME_ENTRY.pack(2_000, 4))
    index = TimeIndex(path)
    try:
        assert not index.load(relative_end=4)  # entry 4 is past a segment holding relative offsets 0..3
        assert index.load(relative_end=5)
        assert list(index.offsets) == [0, 4]
    finally:
        index.close()


def test_time_index_truncation_keeps_entries_below_the_cut(time_index: TimeIndex) -> None:
    for ts, rel in [(1_000, 0), (2_000, 2), (3_000, 5)]:
        time_index.maybe_append(ts, rel)

    time_index.truncate_after_offset(2)

    assert (list(time_index.timestamps), time_index.max_timestamp_ms) == ([1_000], 1_000)
    assert time_index.path.stat().st_size == TIME_ENTRY.size


@pytest.mark.parametrize(("entries", "valid"), [
    ([(1_000, 0), (2_000, 2)], True),
    ([(1_000, 0), (900, 2)], False),  # the running maximum cannot fall: a lookup would bisect an unsorted array
    ([(1_000, 2), (2_000, 1)], False),
    ([(1_000, 0), (1_000, 2)], False),
])
def test_a_time_index_loads_only_when_sorted(tmp_path: Path, entries: list[tuple[int, int]], valid: bool) -> None:
    path = tmp_path / "0.timeindex"
    path.write_bytes(b"".join(TIME_ENTRY.pack(ts, rel) for ts, rel in entries))
    index = TimeIndex(path)
    try:
        assert index.load(relative_end=10) is valid
    finally:
        index.close()


def test_a_torn_time_index_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "0.timeindex"
    path.write_bytes(TIME_ENTRY.pack(1_000, 0) + TIME_ENTRY.pack(2_000, 2)[:7])
    index = TimeIndex(path)
    try:
        assert index.load(relative_end=10) is False
    finally:
        index.close()


def test_time_index_rebuild_replaces_the_file(time_index: TimeIndex) -> None:
    time_index.maybe_append(5_000, 9)

    time_index.rebuild(array("q", [1_000, 2_000, 3_000, 4_000]), array("q", [0, 2, 5, 6]))
    time_index.flush()

    assert time_index.path.read_bytes() == b"".join(
        TIME_ENTRY.pack(ts, rel) for ts, rel in [(1_000, 0), (2_000, 2), (3_000, 5), (4_000, 6)])


def test_an_offset_index_naming_one_offset_twice_does_not_load(tmp_path: Path) -> None:
    path = tmp_path / "0.index"
    path.write_bytes(OFFSET_ENTRY.pack(0, 0) + OFFSET_ENTRY.pack(3, 100) + OFFSET_ENTRY.pack(3, 200))
    index = OffsetIndex(path)
    try:
        assert index.load(log_size=1_000) is False, "a lookup of offset 3 would start past its batch"
    finally:
        index.close()
