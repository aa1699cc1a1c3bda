"""Record batch format: round trip, leader stamping outside the CRC, and every kind of damage detected."""

from __future__ import annotations

import struct

import crc32c
import pytest

from goqueue.storage import batch as batches
from goqueue.storage.batch import InvalidBatch

pytestmark = pytest.mark.unit


def _stamped(records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]], base: int = 100,
             epoch: int = 7, **kwargs: int) -> bytearray:
    batch = batches.build_batch(records, 1_000, **kwargs)
    batches.stamp(batch, base, epoch)
    return batch


def test_round_trip_keeps_offsets_keys_values_headers_and_timestamps() -> None:
    batch = _stamped([(b"k1", b"v1", [("trace", b"abc")]), (None, None, []), (b"k3", b"", [])])

    header = batches.validate_batch(batch)
    records = batches.decode_records(batch)

    assert (header.base_offset, header.leader_epoch, header.record_count) == (100, 7, 3)
    assert (header.last_offset, header.next_offset, header.size) == (102, 103, len(batch))
    assert records == [
        batches.Record(100, 1_000, b"k1", b"v1", [("trace", b"abc")]),
        batches.Record(101, 1_000, None, None, []),
        batches.Record(102, 1_000, b"k3", b"", []),
    ]


def test_per_record_timestamps_set_first_and_max() -> None:
    batch = batches.build_batch([(None, b"a", []), (None, b"b", [])], 0, timestamps_ms=[5_000, 4_000])

    header = batches.validate_batch(batch)

    assert (header.first_timestamp_ms, header.max_timestamp_ms) == (5_000, 5_000)
    assert [r.timestamp_ms for r in batches.decode_records(batch)] == [5_000, 4_000]


def test_stamping_offset_and_epoch_keeps_the_crc_valid() -> None:
    batch = batches.build_batch([(None, b"v", [])], 1)
    crc_before = batches.read_header(batch).crc

    batches.stamp(batch, 2**40, 99)

    assert batches.validate_batch(batch).crc == crc_before


def test_producer_fields_give_the_sequence_range() -> None:
    batch = _stamped([(None, b"a", []), (None, b"b", [])], producer_id=42, producer_epoch=1, base_sequence=10)

    header = batches.validate_batch(batch)

    assert (header.producer_id, header.producer_epoch, header.base_sequence, header.last_sequence) == (42, 1, 10, 11)


@pytest.mark.parametrize("position", [17, 21, 23, 35, 57, 61, -1], ids=lambda p: f"byte{p}")
def test_a_tampered_byte_is_an_invalid_batch(position: int) -> None:
    batch = _stamped([(b"key", b"value" * 10, [("h", b"x")])])
    batch[position] ^= 0x01

    with pytest.raises(InvalidBatch, match=r"CRC mismatch|implausible"):
        batches.validate_batch(batch)
    with pytest.raises(InvalidBatch):
        batches.decode_records(batch)


def test_unknown_magic_is_an_invalid_batch() -> None:
    batch = _stamped([(None, b"v", [])])
    batch[16] = 9

    with pytest.raises(InvalidBatch, match="magic"):
        batches.read_header(batch)


@pytest.mark.parametrize("keep", [0, 10, batches.HEADER_SIZE - 1, batches.HEADER_SIZE, -1])
def test_a_torn_batch_is_an_invalid_batch(keep: int) -> None:
    batch = _stamped([(None, b"value" * 20, [])])

    with pytest.raises(InvalidBatch):
        batches.validate_batch(bytes(batch[:keep]))


def test_an_implausible_length_is_an_invalid_batch() -> None:
    batch = _stamped([(None, b"v", [])])
    struct.pack_into(">i", batch, 8, 3)

    with pytest.raises(InvalidBatch, match="implausible"):
        batches.read_header(batch)


def test_scan_yields_whole_batches_then_raises_at_the_damage() -> None:
    first, second = _stamped([(None, b"a", [])], base=0), _stamped([(None, b"b", [])], base=1)
    buf = bytes(first + second) + b"\x00garbage"

    scan = batches.scan_batches(buf)
    found = [(pos, header.base_offset) for pos, header in (next(scan), next(scan))]

    assert found == [(0, 0), (len(first), 1)]
    with pytest.raises(InvalidBatch):
        next(scan)


def test_iter_headers_stops_silently_at_a_partial_batch() -> None:
    first, second = _stamped([(None, b"a", [])], base=0), _stamped([(None, b"b", [])], base=1)

    headers = list(batches.iter_headers(bytes(first + second[:-1])))

    assert [h.base_offset for _, h in headers] == [0]


def test_rows_rebuilt_with_the_original_last_offset_delta_span_the_same_offsets() -> None:
    batch = _stamped([(b"a", b"1", []), (b"b", b"2", []), (b"a", b"3", [])], base=50)
    header = batches.validate_batch(batch)
    rows = batches.decode_rows(batch, 0, header)

    rebuilt = batches.build_batch_from_rows(rows[:1], header.first_timestamp_ms, header.max_timestamp_ms,
                                            last_offset_delta=header.last_offset_delta)
    batches.stamp(rebuilt, header.base_offset, header.leader_epoch)

    assert batches.validate_batch(rebuilt).next_offset == header.next_offset
    assert [(r.offset, r.value) for r in batches.decode_records(rebuilt)] == [(50, b"1")]


def _fetched(*batch_values: list[bytes], gap_after: int = 0) -> bytes:
    """Whole stamped batches back to back as a fetch returns them; the last one spans `gap_after` more offsets
    than it holds records (what compaction leaves when it removes a batch's last records)."""
    data, base = bytearray(), 0
    for n, values in enumerate(batch_values):
        rows = [(i, 0, None, value, []) for i, value in enumerate(values)]
        last_delta = len(values) - 1 + (gap_after if n == len(batch_values) - 1 else 0)
        batch = batches.build_batch_from_rows(rows, 1_000, 1_000, last_offset_delta=last_delta)
        batches.stamp(batch, base, 0)
        data += batch
        base += last_delta + 1
    return bytes(data)


FETCHED = _fetched([b"r0", b"r1", b"r2"], [b"r3", b"r4", b"r5"], gap_after=2)  # offsets 0-5, then 6 and 7 gone


@pytest.mark.parametrize(("offset", "max_records", "values", "next_offset"), [
    (0, 100, [b"r0", b"r1", b"r2", b"r3", b"r4", b"r5"], 8),  # the gap at the end is stepped over, not re-fetched
    (1, 100, [b"r1", b"r2", b"r3", b"r4", b"r5"], 8),  # the first batch starts before the offset asked for
    (4, 100, [b"r4", b"r5"], 8),
    (0, 3, [b"r0", b"r1", b"r2"], 3),  # exactly one whole batch
    (0, 4, [b"r0", b"r1", b"r2", b"r3"], 4),  # the next fetch resumes inside the second batch
    (1, 1, [b"r1"], 2),
])
def test_records_from_a_fetch_start_at_the_offset_and_say_where_to_continue(
        offset: int, max_records: int, values: list[bytes], next_offset: int) -> None:
    records, continue_at = batches.records_from(FETCHED, offset, max_records)
    assert ([r.value for r in records], continue_at) == (values, next_offset)
    assert [r.offset for r in records] == list(range(offset, offset + len(values)))


def test_an_empty_fetch_continues_where_it_was_asked() -> None:
    assert batches.records_from(b"", 7, 10) == ([], 7)


def _second_batch_corrupt() -> tuple[bytes, int]:
    """Offsets 0-1, 2-3 (its last byte flipped, so its CRC fails) and 4-5; and where the second batch starts."""
    data = bytearray(_fetched([b"r0", b"r1"], [b"r2", b"r3"], [b"r4", b"r5"]))
    _, second, third = (pos for pos, _ in batches.iter_headers(data))
    data[third - 1] ^= 0xFF
    return bytes(data), second


def test_a_fetch_hands_out_the_records_before_a_corrupt_batch() -> None:
    data, _ = _second_batch_corrupt()
    records, continue_at = batches.records_from(data, 0, 100)
    assert ([r.value for r in records], continue_at) == ([b"r0", b"r1"], 2)


@pytest.mark.parametrize("offset", [2, 3])
def test_a_fetch_that_starts_in_a_corrupt_batch_names_it(offset: int) -> None:
    data, second = _second_batch_corrupt()
    with pytest.raises(batches.CorruptBatch, match="CRC") as corrupt:
        batches.records_from(data[second:], offset, 100)  # a fetch at 2 or 3 starts with that batch
    assert (corrupt.value.header.base_offset, corrupt.value.header.last_offset) == (2, 3)


def test_per_record_timestamps_must_match_the_records() -> None:
    with pytest.raises(ValueError, match="zip"):
        batches.build_batch([(None, b"a", []), (None, b"b", [])], 0, timestamps_ms=[5_000])


def test_a_new_batch_sets_no_attribute_bit() -> None:
    header = batches.read_header(batches.build_batch([(None, b"a", [])], 1_000))
    assert header.attributes == 0, "bit 4 marks a control batch; the others are reserved"


def test_a_header_claiming_no_records_is_an_invalid_batch() -> None:
    batch = _stamped([(None, b"v", [])])
    struct.pack_into(">i", batch, 57, 0)  # record_count
    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[21:])))
    with pytest.raises(InvalidBatch, match="implausible"):
        batches.read_header(batch)
