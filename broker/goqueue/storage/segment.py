"""One segment of a partition log: `<base_offset:020d>.log` plus its two sparse indexes.

On-disk format: the log file is record batches back to back (see `batch.py`), each written whole with one
`write`. The file name is the offset of its first record, so listing a directory orders the log.

After a crash: `recover()` walks the file batch by batch, checking length, CRC32C and offset continuity, and cuts the
file at the first invalid byte (a torn tail: never acknowledged under fsync=always), then rebuilds both indexes
from what remains. What was cut is returned so the caller can log it.

Callers: the writer thread appends and flushes; the maintenance thread deletes and swaps segments; the event loop
only reads with `os.pread`, which needs no lock because bytes below the high watermark never change.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from goqueue.storage import batch as batches
from goqueue.storage.batch import BatchHeader, InvalidBatch
from goqueue.storage.index import OffsetIndex, TimeIndex

log = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
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
        self._bytes_since_index = 0

    # -- opening ---------------------------------------------------------------------------------------------

    def load_closed(self, next_offset: int) -> None:
        """Open a closed segment trusting its data; indexes are checked and rebuilt when inconsistent."""
        self.next_offset = next_offset
        if not (self.offset_index.load(self.size) and self.time_index.load()):
            log.warning("segment.index_rebuilt", extra={"segment": str(self.path)})
            self.recover(strict=True)
            return
        first = self._read_first_header()
        self.first_timestamp_ms = first.first_timestamp_ms if first else -1

    def recover(self, strict: bool = False) -> RecoveryCut | None:
        """Validate every batch, cut a torn or corrupt tail (strict: raise instead), rebuild indexes."""
        self.offset_index.reset()
        self.time_index.reset()
        self._bytes_since_index = 0
        self.first_timestamp_ms = -1
        pos = 0
        expected = self.base_offset
        cut: RecoveryCut | None = None
        while pos < self.size:
            chunk = os.pread(self._fd, max(SCAN_CHUNK_BYTES, batches.HEADER_SIZE), pos)
            try:
                header = batches.read_header(chunk)
                if header.size > len(chunk):
                    chunk = os.pread(self._fd, header.size, pos)
                header = batches.validate_batch(chunk)
                if header.base_offset < expected:
                    raise InvalidBatch(f"offset {header.base_offset} goes backwards (expected ≥ {expected})")
            except InvalidBatch as exc:
                cut = RecoveryCut(self.base_offset, pos, self.size - pos, str(exc))
                break
            self._index_batch(header, pos)
            expected = header.next_offset
            pos += header.size
            self.next_offset = header.next_offset
        if cut is not None:
            if strict:
                raise InvalidBatch(f"{self.path.name}: {cut.reason}")
            os.ftruncate(self._fd, cut.position)
            os.fsync(self._fd)
            self.size = cut.position
        self.offset_index.flush()
        self.time_index.flush()
        return cut

    def _read_first_header(self) -> BatchHeader | None:
        if self.size < batches.HEADER_SIZE:
            return None
        return batches.read_header(os.pread(self._fd, batches.HEADER_SIZE, 0))

    # -- writing (writer thread) -----------------------------------------------------------------------------

    def append(self, data: bytes | bytearray, header: BatchHeader) -> None:
        """Write one stamped batch whole; on error the file is cut back so no partial batch remains."""
        position = self.size
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write")  # treat like ENOSPC: the rest did not fit
        except OSError:
            os.ftruncate(self._fd, position)
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
        """Remove every batch at or after `offset` (the cut point must be a batch boundary)."""
        position = self.position_of(offset) if offset < self.next_offset else self.size
        os.ftruncate(self._fd, position)
        os.fsync(self._fd)
        self.size = position
        self.offset_index.truncate_after_position(position)
        self.time_index.truncate_after_offset(offset - self.base_offset)
        self.next_offset = min(self.next_offset, offset)

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

        The file descriptors stay open: a reader on the event loop may still hold this segment, and a closed fd
        number could be reused by another file. The log closes retired segments after a grace period.
        """
        for suffix in (LOG_SUFFIX, ".index", ".timeindex"):
            path = segment_path(self.directory, self.base_offset, suffix)
            if path.exists():
                doomed = path.with_name(path.name + ".deleted")
                path.rename(doomed)
                doomed.unlink()
