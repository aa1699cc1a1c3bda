"""Record batches: the unit that is written, replicated, fetched and checksummed.

On-disk and on-wire format (big-endian), after Kafka's v2 record batch::

    offset size field
    0      8    base_offset         stamped by the partition leader; outside the CRC
    8      4    batch_length        bytes after this field
    12     4    leader_epoch        stamped by the partition leader; outside the CRC
    16     1    magic               1
    17     4    crc32c              CRC32C of bytes 21..end
    21     2    attributes          bit 4: control batch; other bits reserved (0)
    23     4    last_offset_delta
    27     8    first_timestamp_ms
    35     8    max_timestamp_ms
    43     8    producer_id         -1 when not idempotent
    51     2    producer_epoch
    53     4    base_sequence       -1 when not idempotent
    57     4    record_count
    61     …    records             msgpack array of [offset_delta, timestamp_delta, key, value, headers]

The leader stamps offsets and epoch into the header without re-hashing, and nobody on the hot path decodes single
records: the log, the replication fetcher and binary fetch move batches as opaque blobs. Records are encoded with
msgspec (C), so building and decoding a 1000-record batch costs microseconds per record, not tens.

A torn write shows as a batch whose length runs past the end of the file or whose CRC does not match; recovery
uses `scan_batches` to find the last whole batch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import crc32c
import msgspec

MAGIC = 1
HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LENGTH_PREFIX = 12  # base_offset + batch_length: what `batch_length` does not count
CRC_START = 21
CONTROL_FLAG = 0x10
NO_PRODUCER = -1

Header = tuple[str, bytes]
RecordRow = tuple[int, int, bytes | None, bytes | None, list[Header]]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]])


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp_ms: int
    max_timestamp_ms: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes of the whole batch on disk."""
        return LENGTH_PREFIX + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def last_sequence(self) -> int:
        return self.base_sequence + self.last_offset_delta if self.base_sequence >= 0 else -1


class Record(NamedTuple):
    """One consumed record, decoded from a batch."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]


class InvalidBatch(ValueError):
    """Bytes that do not form a valid batch (bad length, magic or CRC)."""


class CorruptBatch(InvalidBatch):
    """A fetched (stored) batch failed its check on read: the log is corrupt there. `header` says where."""

    def __init__(self, header: BatchHeader, reason: str) -> None:
        super().__init__(reason)
        self.header = header


def build_batch(
    records: Sequence[tuple[bytes | None, bytes | None, list[Header]]],
    timestamp_ms: int,
    *,
    producer_id: int = NO_PRODUCER,
    producer_epoch: int = 0,
    base_sequence: int = -1,
    timestamps_ms: Sequence[int] | None = None,
) -> bytearray:
    """Encode records into one batch with base offset 0 and epoch 0 (the leader stamps both)."""
    assert records, "a batch holds at least one record"
    if timestamps_ms is None:
        rows: list[RecordRow] = [(i, 0, key, value, headers) for i, (key, value, headers) in enumerate(records)]
        first_ts = max_ts = timestamp_ms
    else:
        first_ts = timestamps_ms[0]
        max_ts = max(timestamps_ms)
        rows = [(i, ts - first_ts, key, value, headers)
                for i, ((key, value, headers), ts) in enumerate(zip(records, timestamps_ms, strict=True))]
    return build_batch_from_rows(rows, first_ts, max_ts, producer_id, producer_epoch, base_sequence)


def build_batch_from_rows(
    rows: Sequence[RecordRow],
    first_timestamp_ms: int,
    max_timestamp_ms: int,
    producer_id: int = NO_PRODUCER,
    producer_epoch: int = 0,
    base_sequence: int = -1,
    attributes: int = 0,
    last_offset_delta: int | None = None,
) -> bytearray:
    """Encode already-shaped rows (compaction keeps the original offset deltas and timestamps).

    `last_offset_delta` defaults to the last row's; compaction passes the original batch's so the batch still
    spans the same offsets (and producer sequences) after its last record was removed, as Kafka keeps it.
    """
    assert rows, "a batch holds at least one record"
    last_delta = rows[-1][0] if last_offset_delta is None else last_offset_delta
    assert last_delta >= rows[-1][0], "the last offset delta cannot be below the last record's"
    payload = _encoder.encode(rows)
    buf = bytearray(HEADER_SIZE + len(payload))
    HEADER.pack_into(
        buf, 0, 0, HEADER_SIZE + len(payload) - LENGTH_PREFIX, 0, MAGIC, 0, attributes, last_delta,
        first_timestamp_ms, max_timestamp_ms, producer_id, producer_epoch, base_sequence, len(rows))
    buf[HEADER_SIZE:] = payload
    struct.pack_into(">I", buf, 17, crc32c.crc32c(memoryview(buf)[CRC_START:]))
    return buf


def stamp(batch: bytearray, base_offset: int, leader_epoch: int) -> None:
    """Write the leader-assigned base offset and epoch; neither is covered by the CRC."""
    struct.pack_into(">q", batch, 0, base_offset)
    struct.pack_into(">i", batch, 12, leader_epoch)


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    if len(buf) - pos < HEADER_SIZE:
        raise InvalidBatch(f"{len(buf) - pos} bytes left, a batch header needs {HEADER_SIZE}")
    header = BatchHeader._make(HEADER.unpack_from(buf, pos))
    if header.magic != MAGIC:
        raise InvalidBatch(f"unknown batch magic {header.magic}")
    if header.batch_length < HEADER_SIZE - LENGTH_PREFIX or header.record_count < 1 or header.last_offset_delta < 0:
        raise InvalidBatch(f"implausible batch header {header}")
    return header


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Parse the header at `pos` and check that the whole batch is present and its CRC matches."""
    header = read_header(buf, pos)
    end = pos + header.size
    if end > len(buf):
        raise InvalidBatch(f"batch at byte {pos} needs {header.size} bytes, only {len(buf) - pos} remain")
    actual = crc32c.crc32c(memoryview(buf)[pos + CRC_START:end])
    if actual != header.crc:
        raise InvalidBatch(f"CRC mismatch at byte {pos}: stored {header.crc:#010x}, computed {actual:#010x}")
    return header


def scan_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """(position, header) of each whole, CRC-valid batch; stops at the first invalid byte (raises InvalidBatch)."""
    pos = 0
    while pos < len(buf):
        header = validate_batch(buf, pos)
        yield pos, header
        pos += header.size


def iter_headers(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """(position, header) of each batch without CRC checks, stopping silently at a partial batch (hot path)."""
    pos = 0
    end = len(buf)
    while end - pos >= HEADER_SIZE:
        header = BatchHeader._make(HEADER.unpack_from(buf, pos))
        if pos + header.size > end or header.batch_length <= 0:
            return
        yield pos, header
        pos += header.size


def decode_records(buf: bytes | bytearray | memoryview, pos: int = 0, verify: bool = True) -> list[Record]:
    """Decode the records of the batch at `pos` (CRC checked unless `verify` is False)."""
    header = validate_batch(buf, pos) if verify else read_header(buf, pos)
    rows = _decoder.decode(memoryview(buf)[pos + HEADER_SIZE:pos + header.size])
    base, first_ts = header.base_offset, header.first_timestamp_ms
    return [Record(base + delta, first_ts + ts_delta, key, value, headers)
            for delta, ts_delta, key, value, headers in rows]


def decode_rows(buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader) -> list[RecordRow]:
    """The raw rows of a batch (compaction rewrites them without changing deltas)."""
    return _decoder.decode(memoryview(buf)[pos + HEADER_SIZE:pos + header.size])


def records_from(data: bytes | bytearray | memoryview, offset: int, max_records: int) -> tuple[list[Record], int]:
    """Records at or past `offset` from fetched whole batches, at most `max_records`, and the offset to continue
    from (every API's fetch decodes through here).

    A fetch returns whole batches, so the first may start before `offset`; its earlier records are skipped. When
    every record of a batch is taken, the next offset moves past the whole batch, so a gap that compaction left at
    its end is skipped instead of re-fetched forever.

    A batch that fails its CRC ends the answer before it, so the records ahead of it are still handed out; when it
    is the first batch, `CorruptBatch` names it.
    """
    records: list[Record] = []
    next_offset = offset
    for pos, header in iter_headers(data):
        if len(records) >= max_records:
            break
        try:
            decoded = decode_records(data, pos)
        except InvalidBatch as exc:
            if next_offset > offset:
                break  # the next fetch starts at this batch and reports it
            raise CorruptBatch(header, str(exc)) from exc
        for record in decoded:
            if record.offset < offset:
                continue
            if len(records) >= max_records:
                break
            records.append(record)
            next_offset = record.offset + 1
        else:
            next_offset = max(next_offset, header.next_offset)
    return records, next_offset
