"""One segment of a partition log: `<base_offset:020d>.log` plus its two sparse indexes.

On-disk format: the log file is record batches back to back (see `batch.py`), each written whole with one
`write`. The file name is the offset of its first record, so listing a directory orders the log.

After a crash: `recover()` walks the file batch by batch, checking length, CRC32C and that offsets never go backwards
nor leave the segment's 32-bit relative range, and cuts the file at the first invalid byte (a torn tail: never
acknowledged under fsync=always), then rebuilds both indexes from what remains. What was cut is returned so the
caller can log it. The base offset and leader epoch are outside the CRC (the leader stamps them, as in Kafka), so
damage to their low bytes that keeps offsets increasing is not detected here.

A segment whose cut-back after a failed write also failed is `broken` and refuses appends (see `append`).

Callers: the writer thread appends and flushes; the maintenance thread deletes and swaps segments; the event loop
only reads with `os.pread`, which needs no lock because bytes below the high watermark never change.
"""

from __future__ import annotations

import errno
import logging
import os
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from goqueue.storage import batch as batches
from goqueue.storage.batch import BatchHeader, InvalidBatch
from goqueue.storage.index import OffsetIndex, TimeIndex
from goqueue.storage.sync import fsync_directory

log = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
INDEX_SUFFIXES = (".index", ".timeindex")
MAX_RELATIVE_OFFSET = 2**32 - 1  # index entries store offsets relative to the segment base as u32
SCAN_CHUNK_BYTES = 4 * 2**20


def segment_path(directory: Path, base_offset: int, suffix: str = LOG_SUFFIX) -> Path:
    return directory / f"{base_offset:020d}{suffix}"


@dataclass(frozen=True)
class RecoveryCut:
    """What recovery cut from a segment tail."""

    segment_base_offset: int
    position: int
    bytes_cut: int
    reason: str


@dataclass
class _Scan:
    """What a recovery scan found: the valid prefix, its index entries, and the cut (if any)."""

    base_offset: int
    next_offset: int
    first_timestamp_ms: int = -1
    max_timestamp_ms: int = -1
    bytes_since_index: int = 0
    index_offsets: array[int] = field(default_factory=lambda: array("q"))
    index_positions: array[int] = field(default_factory=lambda: array("q"))
    timestamps: array[int] = field(default_factory=lambda: array("q"))
    time_offsets: array[int] = field(default_factory=lambda: array("q"))
    cut: RecoveryCut | None = None

    def add(self, header: BatchHeader, position: int, index_interval_bytes: int) -> None:
        """Index one valid batch exactly as `Segment._index_batch` does on append."""
        relative = header.base_offset - self.base_offset
        if self.first_timestamp_ms < 0:
            self.first_timestamp_ms = header.first_timestamp_ms
        if position == 0 or self.bytes_since_index >= index_interval_bytes:
            self.index_offsets.append(relative)
            self.index_positions.append(position)
            self.bytes_since_index = 0
        self.bytes_since_index += header.size
        if header.max_timestamp_ms > self.max_timestamp_ms:
            self.max_timestamp_ms = header.max_timestamp_ms
            self.timestamps.append(header.max_timestamp_ms)
            self.time_offsets.append(relative)
        self.next_offset = header.next_offset


class Segment:
    def __init__(self, directory: Path, base_offset: int, index_interval_bytes: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.path = segment_path(directory, base_offset)
        self.index_interval_bytes = index_interval_bytes
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.offset_index = OffsetIndex(segment_path(directory, base_offset, ".index"))
        self.time_index = TimeIndex(segment_path(directory, base_offset, ".timeindex"))
        self.next_offset = base_offset
        self.first_timestamp_ms = -1
        self.broken: str | None = None
        self._bytes_since_index = 0

    # -- opening ---------------------------------------------------------------------------------------------

    def load_closed(self, next_offset: int) -> None:
        """Open a closed segment trusting its data; indexes are checked and rebuilt when inconsistent.

        Raises InvalidBatch (touching no file) when a rebuild finds the data itself invalid.
        """
        self.next_offset = next_offset
        if not (self.offset_index.load(self.size) and self.time_index.load(next_offset - self.base_offset)
                and self._last_index_entry_is_a_batch()):
            log.warning("segment.index_rebuilt", extra={"segment": str(self.path)})
            self.recover(strict=True)
            return
        first = self._read_first_header()
        self.first_timestamp_ms = first.first_timestamp_ms if first else -1

    def _last_index_entry_is_a_batch(self) -> bool:
        """The newest offset-index entry points at a batch header of the offset it names (one pread)."""
        if not self.offset_index.positions:
            return True
        position, relative = self.offset_index.positions[-1], self.offset_index.offsets[-1]
        try:
            header = batches.read_header(os.pread(self._fd, batches.HEADER_SIZE, position))
        except InvalidBatch:
            return False
        return header.base_offset == self.base_offset + relative and position + header.size <= self.size

    def recover(self, strict: bool = False) -> RecoveryCut | None:
        """Validate every batch, cut a torn or corrupt tail (strict: raise instead), rebuild indexes.

        The scan only reads; files change after it, so a strict recovery that raises leaves data and index files
        exactly as they were (an operator can still copy them off for repair).
        """
        scan = self._scan()
        if scan.cut is not None and strict:
            raise InvalidBatch(f"{self.path.name}: {scan.cut.reason}")
        if scan.cut is not None:
            os.ftruncate(self._fd, scan.cut.position)
            os.fsync(self._fd)
            self.size = scan.cut.position
        self.offset_index.rebuild(scan.index_offsets, scan.index_positions)
        self.time_index.rebuild(scan.timestamps, scan.time_offsets)
        self.offset_index.flush()
        self.time_index.flush()
        self.next_offset = scan.next_offset
        self.first_timestamp_ms = scan.first_timestamp_ms
        self._bytes_since_index = scan.bytes_since_index
        return scan.cut

    def _scan(self) -> _Scan:
        """Walk the file in chunks, checking length, CRC and that offsets never go backwards; index as it goes."""
        scan = _Scan(self.base_offset, self.base_offset)
        pos = 0
        chunk, chunk_start = b"", 0
        while pos < self.size:
            at = pos - chunk_start
            try:
                if len(chunk) - at < batches.HEADER_SIZE or batches.read_header(chunk, at).size > len(chunk) - at:
                    chunk, chunk_start, at = os.pread(self._fd, SCAN_CHUNK_BYTES, pos), pos, 0
                    needed = batches.read_header(chunk).size
                    if needed > len(chunk):  # a batch larger than the chunk: read exactly it
                        chunk = os.pread(self._fd, needed, pos)
                header = batches.validate_batch(chunk, at)
                if header.base_offset < scan.next_offset:
                    raise InvalidBatch(f"offset {header.base_offset} goes backwards (expected ≥ {scan.next_offset})")
                if header.last_offset - self.base_offset > MAX_RELATIVE_OFFSET:
                    # the base offset is outside the CRC (the leader stamps it); the index's u32 bounds it
                    raise InvalidBatch(f"offset {header.last_offset} is beyond this segment's range")
            except InvalidBatch as exc:
                scan.cut = RecoveryCut(self.base_offset, pos, self.size - pos, str(exc))
                break
            scan.add(header, pos, self.index_interval_bytes)
            pos += header.size
        return scan

    def _read_first_header(self) -> BatchHeader | None:
        if self.size < batches.HEADER_SIZE:
            return None
        return batches.read_header(os.pread(self._fd, batches.HEADER_SIZE, 0))

    # -- writing (writer thread) -----------------------------------------------------------------------------

    def append(self, data: bytes | bytearray, header: BatchHeader) -> None:
        """Write one stamped batch whole; on error the file is cut back so no partial batch remains.

        If even the cut-back fails, the file may end in a partial batch that `size` does not know about; appending
        after it would put acknowledged batches behind garbage that recovery cuts. The segment is then broken and
        refuses every further append (EIO) until the broker restarts and recovery cuts the tail.
        """
        if self.broken is not None:
            raise OSError(errno.EIO, f"segment {self.path.name} is broken: {self.broken}")
        position = self.size
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, "short write")  # the rest did not fit
        except OSError as exc:
            try:
                os.ftruncate(self._fd, position)
            except OSError as cut_exc:
                self.broken = f"cutting back a failed write failed: {cut_exc}"
                raise cut_exc from exc
            raise
        self.size += len(data)
        self._index_batch(header, position)
        self.next_offset = header.next_offset

    def _index_batch(self, header: BatchHeader, position: int) -> None:
        relative = header.base_offset - self.base_offset
        if self.first_timestamp_ms < 0:
            self.first_timestamp_ms = header.first_timestamp_ms
        if position == 0 or self._bytes_since_index >= self.index_interval_bytes:
            self.offset_index.append(relative, position)
            self._bytes_since_index = 0
        self._bytes_since_index += header.size
        self.time_index.maybe_append(header.max_timestamp_ms, relative)

    def flush(self) -> None:
        """Make appended batches durable (fdatasync); indexes are rebuilt on recovery, so only buffered out."""
        os.fdatasync(self._fd)
        self.offset_index.flush()
        self.time_index.flush()

    def seal(self) -> None:
        """The segment stops being active: make data and indexes durable so recovery can trust them."""
        os.fdatasync(self._fd)
        self.offset_index.flush(fsync=True)
        self.time_index.flush(fsync=True)

    def truncate_to(self, offset: int) -> None:
        """Remove every batch holding an offset at or after `offset` (a whole batch: one inside it goes too)."""
        if offset >= self.next_offset:
            return
        position = self.position_of(offset)
        if position < self.size:
            offset = min(offset, batches.read_header(os.pread(self._fd, batches.HEADER_SIZE, position)).base_offset)
        os.ftruncate(self._fd, position)
        os.fsync(self._fd)
        self.size = position
        self.offset_index.truncate_after_position(position)
        self.time_index.truncate_after_offset(offset - self.base_offset)
        self.next_offset = max(offset, self.base_offset)
        self.broken = None  # the tail the failed cut-back left behind is gone now
        if position == 0:
            self.first_timestamp_ms = -1
        indexed = self.offset_index.positions[-1] if self.offset_index.positions else 0
        self._bytes_since_index = position - indexed if position else 0

    # -- reading (any thread) --------------------------------------------------------------------------------

    def read(self, position: int, max_bytes: int) -> bytes:
        return os.pread(self._fd, min(max_bytes, max(0, self.size - position)), position)

    def position_of(self, offset: int) -> int:
        """Byte position of the batch containing `offset` (the segment end when past it)."""
        position = self.offset_index.lookup(offset - self.base_offset)
        while position < self.size:
            header = batches.read_header(os.pread(self._fd, batches.HEADER_SIZE, position))
            if header.next_offset > offset:
                return position
            position += header.size
        return self.size

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """First offset of the first batch whose max timestamp is ≥ `timestamp_ms`, or None.

        The time index records each point where the running max timestamp grew, so its first entry ≥ the target
        is exactly the first batch whose own max timestamp reaches it: every earlier batch stayed below.
        """
        relative = self.time_index.lookup(timestamp_ms)
        return None if relative is None else self.base_offset + relative

    @property
    def max_timestamp_ms(self) -> int:
        return self.time_index.max_timestamp_ms

    # -- lifecycle -------------------------------------------------------------------------------------------

    def close(self) -> None:
        os.close(self._fd)
        self.offset_index.close()
        self.time_index.close()

    def delete(self) -> None:
        """Rename then remove, so a crash in between leaves a `.deleted` file recovery cleans up.

        The directory is fsynced afterwards: a deleted segment that came back after a power loss would bring back
        records a truncation removed, and overlap the offsets written since.

        The file descriptors stay open: a reader on the event loop may still hold this segment, and a closed fd
        number could be reused by another file. The log closes retired segments after a grace period.
        """
        for suffix in (LOG_SUFFIX, *INDEX_SUFFIXES):
            path = segment_path(self.directory, self.base_offset, suffix)
            if path.exists():
                doomed = path.with_name(path.name + ".deleted")
                path.rename(doomed)
                doomed.unlink()
        fsync_directory(self.directory)
