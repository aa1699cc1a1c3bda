"""Sparse offset and time indexes of one segment.

On-disk format: `<base_offset>.index` holds 8-byte entries (relative offset u32, file position u32), one per
`storage.indexIntervalBytes` of log; `<base_offset>.timeindex` holds 12-byte entries (max timestamp i64 so far,
relative offset u32), appended when the segment's max timestamp grows. Both are append-only, sorted, and kept in
memory as arrays for `bisect`.

After a crash: indexes are never trusted blindly. The active segment's indexes are rebuilt from its recovered log;
a closed segment's index is checked on load (whole entries, sorted, within the log, a first entry at position 0 for
a non-empty log) and rebuilt when it is not. A rebuild replaces the file wholesale (`rebuild`), after the log has
been validated, so a validation that fails leaves the index files as they were. Indexes are an acceleration only,
so losing one loses no record.

Called by the writer thread (append) and the maintenance thread (rebuild); lookups happen on the event loop and are
safe because entries are only ever appended (a list append is atomic under the GIL) or replaced wholesale.
"""

from __future__ import annotations

import bisect
import os
import struct
from array import array
from pathlib import Path

OFFSET_ENTRY = struct.Struct(">II")
TIME_ENTRY = struct.Struct(">qI")


class OffsetIndex:
    """relative offset → byte position of the batch containing it (largest entry ≤ target)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets = array("q")
        self.positions = array("q")
        self._file = open(path, "ab")  # noqa: SIM115 - lives as long as the segment

    def load(self, log_size: int) -> bool:
        """Read entries from disk; False when the file is inconsistent and must be rebuilt.

        A non-empty log always has an entry at position 0 (the first batch is always indexed), so an empty or
        missing index next to a non-empty log is inconsistent too: it is what a crash between removing a
        compacted segment's old indexes and writing new ones leaves.
        """
        data = self.path.read_bytes()
        if len(data) % OFFSET_ENTRY.size:
            return False
        offsets, positions = array("q"), array("q")
        last_off = last_pos = -1
        for rel, pos in OFFSET_ENTRY.iter_unpack(data):
            if rel <= last_off or pos <= last_pos or pos >= log_size:
                return False
            offsets.append(rel)
            positions.append(pos)
            last_off, last_pos = rel, pos
        if log_size and (not positions or positions[0] != 0):
            return False
        self.offsets, self.positions = offsets, positions
        return True

    def rebuild(self, offsets: array[int], positions: array[int]) -> None:
        """Replace every entry (recovery re-indexed a validated log)."""
        self._file.flush()
        os.truncate(self.path, 0)
        self.offsets, self.positions = offsets, positions
        self._file.write(b"".join(OFFSET_ENTRY.pack(rel, pos) for rel, pos in zip(offsets, positions, strict=True)))

    def append(self, relative_offset: int, position: int) -> None:
        self.offsets.append(relative_offset)
        self.positions.append(position)
        self._file.write(OFFSET_ENTRY.pack(relative_offset, position))

    def lookup(self, relative_offset: int) -> int:
        """Byte position at or before the batch holding `relative_offset` (0 when none is indexed)."""
        i = bisect.bisect_right(self.offsets, relative_offset) - 1
        return self.positions[i] if i >= 0 else 0

    def truncate_after_position(self, position: int) -> None:
        """Drop entries at or past `position` (the log was cut there)."""
        keep = bisect.bisect_left(self.positions, position)
        self._rewrite(keep)

    def reset(self) -> None:
        self._rewrite(0)

    def _rewrite(self, keep: int) -> None:
        del self.offsets[keep:]
        del self.positions[keep:]
        self._file.flush()
        os.truncate(self.path, keep * OFFSET_ENTRY.size)

    def flush(self, fsync: bool = False) -> None:
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class TimeIndex:
    """timestamp → the first offset whose batch has max timestamp ≥ it (for offset resets by time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.timestamps = array("q")
        self.offsets = array("q")
        self._file = open(path, "ab")  # noqa: SIM115 - lives as long as the segment

    def load(self, relative_end: int) -> bool:
        """Read entries from disk; False when inconsistent (unsorted, or past `relative_end`, the segment's end)."""
        data = self.path.read_bytes()
        if len(data) % TIME_ENTRY.size:
            return False
        timestamps, offsets = array("q"), array("q")
        for ts, rel in TIME_ENTRY.iter_unpack(data):
            if rel >= relative_end or (timestamps and (ts <= timestamps[-1] or rel < offsets[-1])):
                return False
            timestamps.append(ts)
            offsets.append(rel)
        self.timestamps, self.offsets = timestamps, offsets
        return True

    def rebuild(self, timestamps: array[int], offsets: array[int]) -> None:
        """Replace every entry (recovery re-indexed a validated log)."""
        self._file.flush()
        os.truncate(self.path, 0)
        self.timestamps, self.offsets = timestamps, offsets
        self._file.write(b"".join(TIME_ENTRY.pack(ts, rel) for ts, rel in zip(timestamps, offsets, strict=True)))

    @property
    def max_timestamp_ms(self) -> int:
        return self.timestamps[-1] if self.timestamps else -1

    def maybe_append(self, max_timestamp_ms: int, relative_offset: int) -> None:
        """Record a new maximum timestamp; timestamps that do not grow add nothing."""
        if max_timestamp_ms > self.max_timestamp_ms:
            self.timestamps.append(max_timestamp_ms)
            self.offsets.append(relative_offset)
            self._file.write(TIME_ENTRY.pack(max_timestamp_ms, relative_offset))

    def lookup(self, timestamp_ms: int) -> int | None:
        """Relative offset of the first batch that may hold a record at or after `timestamp_ms`."""
        i = bisect.bisect_left(self.timestamps, timestamp_ms)
        return self.offsets[i] if i < len(self.timestamps) else None

    def truncate_after_offset(self, relative_offset: int) -> None:
        keep = bisect.bisect_left(self.offsets, relative_offset)
        del self.timestamps[keep:]
        del self.offsets[keep:]
        self._file.flush()
        os.truncate(self.path, keep * TIME_ENTRY.size)

    def reset(self) -> None:
        self.truncate_after_offset(-1)

    def flush(self, fsync: bool = False) -> None:
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
