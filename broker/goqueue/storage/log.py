"""The log of one partition: an ordered list of segments in `<dataDir>/<topic>-<partition>/`.

On-disk format: segment files (`segment.py`) plus `recovery-point`, an 8-byte big-endian checkpoint: every segment
below it was sealed (fdatasync of data and indexes) and is trusted on start-up. It is written at each roll (before
the new segment exists), lowered by a truncation below it, and set to the active segment's base by a clean close.
Files ending in `.deleted`, `.cleaned` or `.tmp`, and index files without their `.log`, are leftovers of an
interrupted delete, compaction swap or checkpoint write and are removed on open.

After a crash: `open` trusts sealed segments (checking their indexes, rebuilding them when inconsistent), and
CRC-checks every segment at or past the recovery point: a torn or corrupt tail of the *last* segment is cut and
logged, and kept in `recovery_cuts` (under fsync=always it was never acknowledged). Corruption in a segment that
has newer segments after it is not a torn write: nothing is cut or rewritten (data and index files keep their
sizes), the log raises `CorruptSegment`, and the broker keeps the partition offline until it is repaired (from a
replica once the cluster exists) so no acknowledged record is thrown away.

`replication-offset-checkpoint` (Kafka's file of that name, one per partition here): the high watermark, 8 bytes
big-endian, written atomically by `checkpoint_high_watermark` (the broker's checkpoint thread, every few seconds, and
`close`) and lowered by a truncation below it. It lags the live value, never leads it: the high watermark only grows
between truncations. On open the high watermark is min(checkpoint, log end), at least the log start — not the log
end, which may hold records a leader wrote but the in-sync replicas never confirmed (they can vanish at the next
leader change). A missing file reads 0: the leader then moves the high watermark up again as its in-sync replicas
fetch.

Offsets: `log_start_offset` ≤ `high_watermark` ≤ `log_end_offset`. Only records below the high watermark are
visible to readers; the owner of the partition (single-node: the writer after fdatasync; cluster: the leader
after in-sync replicas confirm) moves it.

Threads: the writer thread calls `append`, `flush`, `roll`, `truncate_to`; the maintenance thread calls `roll`
(retention of a quiet topic), `delete_oldest_segment` and `replace_segment`; any thread may `read`. Structural
changes hold `lock`; `flush` does not need it (a concurrent roll seals what it would have synced).
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from goqueue.errors import OffsetOutOfRange
from goqueue.storage import batch as batches
from goqueue.storage.batch import InvalidBatch
from goqueue.storage.producers import ProducerTable
from goqueue.storage.segment import INDEX_SUFFIXES, LOG_SUFFIX, RecoveryCut, Segment, segment_path
from goqueue.storage.sync import fsync_directory, write_file_atomically

log = logging.getLogger(__name__)

RECOVERY_POINT_FILE = "recovery-point"
HIGH_WATERMARK_FILE = "replication-offset-checkpoint"
RETIRED_GRACE_S = 60.0
PRODUCER_SCAN_SEGMENTS = 2


class LogDeleted(Exception):
    """The log's files were deleted (its replica moved away, its topic was deleted) while a caller still held it."""


class CorruptSegment(Exception):
    """A segment that is not the log's tail fails validation."""


@dataclass(frozen=True)
class LogConfig:
    segment_bytes: int = 128 * 2**20
    segment_age_s: float = 7 * 86400.0
    index_interval_bytes: int = 4096


@dataclass(frozen=True)
class AppendResult:
    base_offset: int
    last_offset: int
    duplicate: bool = False


class PartitionLog:
    def __init__(self, directory: Path, config: LogConfig, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self.producers = ProducerTable()
        self.high_watermark = 0
        self.flushed_offset = 0
        self.checkpointed_high_watermark = 0
        self._checkpoint_lock = threading.Lock()  # the checkpoint thread and a truncation share one temp file
        self.recovery_cuts: list[RecoveryCut] = []
        self._retired: list[tuple[float, Segment]] = []

    # -- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig, clock: Callable[[], float] = time.time) -> PartitionLog:
        """Open or create; recovers the tail and raises CorruptSegment for corruption before it."""
        partition_log = cls(directory, config, clock)
        partition_log._open()
        return partition_log

    def _open(self) -> None:
        new_dir = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True)
        if new_dir:
            fsync_directory(self.directory.parent)
        self._remove_leftovers()
        bases = sorted(int(p.name.removesuffix(LOG_SUFFIX)) for p in self.directory.glob(f"*{LOG_SUFFIX}"))
        recovery_point = self._read_recovery_point()
        try:
            for i, base in enumerate(bases):
                segment = Segment(self.directory, base, self.config.index_interval_bytes)
                self.segments.append(segment)  # appended first so a failure below closes it too
                if i == len(bases) - 1:
                    self._recover_tail(segment)
                    continue
                try:
                    if base < recovery_point:
                        segment.load_closed(next_offset=bases[i + 1])
                    else:
                        segment.recover(strict=True)
                except InvalidBatch as exc:
                    raise CorruptSegment(f"{self.directory.name}: {exc}") from exc
            if not self.segments:
                self.segments.append(Segment(self.directory, 0, self.config.index_interval_bytes))
                fsync_directory(self.directory)
        except BaseException:
            for opened in self.segments:
                opened.close()
            self.segments = []
            raise
        self._bases = [s.base_offset for s in self.segments]
        self.flushed_offset = self.log_end_offset
        self.checkpointed_high_watermark = self._read_offset_file(HIGH_WATERMARK_FILE)
        self.high_watermark = max(self.log_start_offset, min(self.checkpointed_high_watermark, self.log_end_offset))
        self._rebuild_producers()

    def _remove_leftovers(self) -> None:
        """Remove what an interrupted delete, compaction swap or checkpoint left, and indexes without a log."""
        doomed = [*self.directory.glob("*.deleted"), *self.directory.glob("*.cleaned"), *self.directory.glob("*.tmp")]
        for suffix in INDEX_SUFFIXES:
            doomed += [p for p in self.directory.glob(f"*{suffix}") if not p.with_suffix(LOG_SUFFIX).exists()]
        for leftover in doomed:
            leftover.unlink()
        if doomed:
            fsync_directory(self.directory)
            log.info("log.leftovers_removed", extra={"log": str(self.directory), "files": len(doomed)})

    def _recover_tail(self, segment: Segment) -> None:
        """The newest segment may end in a torn write (never acknowledged under fsync=always): cut and log it."""
        cut = segment.recover()
        if cut is not None:
            self.recovery_cuts.append(cut)
            log.warning("log.tail_truncated", extra={
                "log": str(self.directory), "segment": segment.base_offset, "position": cut.position,
                "bytes_cut": cut.bytes_cut, "reason": cut.reason})

    def _read_recovery_point(self) -> int:
        return self._read_offset_file(RECOVERY_POINT_FILE)

    def _read_offset_file(self, name: str) -> int:
        try:
            return int.from_bytes((self.directory / name).read_bytes()[:8], "big")
        except (FileNotFoundError, ValueError):
            return 0

    def checkpoint_high_watermark(self) -> bool:
        """Persist the high watermark when it moved since the last checkpoint (any thread but the event loop)."""
        with self._checkpoint_lock:
            value = self.high_watermark
            if value == self.checkpointed_high_watermark:
                return False
            write_file_atomically(self.directory / HIGH_WATERMARK_FILE, value.to_bytes(8, "big"))
            self.checkpointed_high_watermark = value
            return True

    def _write_recovery_point(self, offset: int) -> None:
        write_file_atomically(self.directory / RECOVERY_POINT_FILE, offset.to_bytes(8, "big"))

    def _rebuild_producers(self) -> None:
        for segment in self.segments[-PRODUCER_SCAN_SEGMENTS:]:
            data = segment.read(0, segment.size)
            for _, header in batches.iter_headers(data):
                self.producers.record(header)

    # -- offsets ---------------------------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.segments[0].base_offset

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # -- writing (writer thread) -----------------------------------------------------------------------------

    def append(self, batch: bytearray, leader_epoch: int) -> AppendResult:
        """Stamp offsets into a validated batch and write it; a duplicate idempotent retry writes nothing."""
        header = batches.read_header(batch)
        with self.lock:
            self._check_not_deleted(self.segments)
            duplicate = self.producers.check(header)
            if duplicate is not None:
                return AppendResult(duplicate[0], duplicate[1], duplicate=True)
            if self._should_roll(len(batch)):
                self.roll()
            base = self.log_end_offset
            batches.stamp(batch, base, leader_epoch)
            stamped = header._replace(base_offset=base, leader_epoch=leader_epoch)
            self.active.append(batch, stamped)
            self.producers.record(stamped)
            return AppendResult(base, stamped.last_offset)

    def append_replicated(self, data: bytes) -> int:
        """Append batches as stamped by a leader (a follower's fetch); returns the new log end offset."""
        with self.lock:
            self._check_not_deleted(self.segments)
            for pos, header in batches.scan_batches(data):
                if header.base_offset < self.log_end_offset:
                    raise InvalidBatch(f"replicated batch {header.base_offset} is below the log end "
                                       f"{self.log_end_offset}")
                if self._should_roll(header.size):
                    self.roll(base_offset=header.base_offset)
                self.active.append(data[pos:pos + header.size], header)
                self.producers.record(header)
            return self.log_end_offset

    def _should_roll(self, incoming_bytes: int) -> bool:
        active = self.active
        if active.size == 0:
            return False
        if active.size + incoming_bytes > self.config.segment_bytes:
            return True
        return active.first_timestamp_ms >= 0 and (
            self.clock() * 1000 - active.first_timestamp_ms > self.config.segment_age_s * 1000)

    def roll(self, base_offset: int | None = None) -> None:
        """Seal the active segment and start a new one at the log end offset (or the leader's `base_offset`).

        Rolling an empty active segment at its own base is a no-op (the new file would be the same file). The
        recovery point is written before the new segment exists: it only promises that the segments below it are
        sealed, which the seal just made true, and a crash before the new file exists leaves nothing to clean.
        """
        with self.lock:
            base = self.log_end_offset if base_offset is None else base_offset
            previous = self.active
            if previous.size == 0 and base == previous.base_offset:
                return
            assert base >= self.log_end_offset, f"roll to {base} below the log end {self.log_end_offset}"
            previous.seal()
            self.flushed_offset = max(self.flushed_offset, previous.next_offset)
            self._write_recovery_point(base)
            segment = Segment(self.directory, base, self.config.index_interval_bytes)
            try:
                fsync_directory(self.directory)
            except BaseException:
                segment.close()
                raise
            if previous.size == 0:  # an empty segment at another base (a follower jumping ahead) holds nothing
                self.segments.pop()
                self._bases.pop()
                self._retire(previous)
            self.segments.append(segment)
            self._bases.append(base)
            log.info("segment.rolled", extra={"log": self.directory.name, "base_offset": base})

    def _check_not_deleted(self, segments: list[Segment]) -> None:
        if not segments:  # delete_files leaves none
            raise LogDeleted(f"{self.directory.name} was deleted")

    def flush(self) -> int:
        """fdatasync the active segment; returns the offset below which everything is durable."""
        segments = self.segments  # read once, without the lock: delete_files empties the list before closing
        self._check_not_deleted(segments)
        segment = segments[-1]
        end = segment.next_offset
        segment.flush()
        self.flushed_offset = max(self.flushed_offset, end)
        return self.flushed_offset

    def truncate_to(self, offset: int) -> None:
        """Remove every record at or after `offset` (follower truncation, or rolling back unflushed writes)."""
        with self.lock:
            self._check_not_deleted(self.segments)
            offset = max(offset, self.log_start_offset)
            while len(self.segments) > 1 and self.active.base_offset >= offset:
                self._retire(self.segments.pop())
                self._bases.pop()
            self.active.truncate_to(offset)
            self.producers.forget_from(self.log_end_offset)
            self.high_watermark = min(self.high_watermark, self.log_end_offset)
            self.flushed_offset = min(self.flushed_offset, self.log_end_offset)
            if self.checkpointed_high_watermark > self.high_watermark:
                # records re-appended below a stale checkpoint must not read as committed after a restart
                self.checkpoint_high_watermark()
            if self._read_recovery_point() > self.active.base_offset:
                # the checkpoint named a segment that no longer exists; the active one is open for writes again
                self._write_recovery_point(self.active.base_offset)

    # -- maintenance (maintenance thread) --------------------------------------------------------------------

    def delete_oldest_segment(self) -> Segment | None:
        """Delete the oldest segment unless it is the only one or holds unflushed/unreplicated records."""
        with self.lock:
            if len(self.segments) < 2 or self.segments[1].base_offset > self.high_watermark:
                return None
            segment = self.segments.pop(0)
            self._bases.pop(0)
            self._retire(segment)
            return segment

    def closed_segments(self) -> list[Segment]:
        with self.lock:
            return self.segments[:-1]

    def replace_segment(self, old: Segment, new_path: Path) -> None:
        """Swap a compacted copy (`<base>.log.cleaned`, already fsynced) in for `old`.

        The old indexes are removed (and the directory fsynced) before the rename: a crash after the rename must
        not find indexes whose positions point into the middle of the compacted file's batches. An index missing
        next to a non-empty log is rebuilt on open. If `old` left the log meanwhile (retention, truncation), the
        copy is discarded.
        """
        with self.lock:
            if old not in self.segments:
                new_path.unlink(missing_ok=True)
                return
            i = self.segments.index(old)
            next_offset = old.next_offset
            for suffix in INDEX_SUFFIXES:
                segment_path(self.directory, old.base_offset, suffix).unlink(missing_ok=True)
            fsync_directory(self.directory)
            new_path.replace(old.path)
            fsync_directory(self.directory)
            replacement = Segment(self.directory, old.base_offset, self.config.index_interval_bytes)
            try:
                replacement.recover(strict=True)
                replacement.next_offset = next_offset
                replacement.seal()
            except BaseException:
                replacement.close()
                raise
            self.segments[i] = replacement
            self._retired.append((self.clock(), old))

    def _retire(self, segment: Segment) -> None:
        segment.delete()
        self._retired.append((self.clock(), segment))

    def close_retired(self, force: bool = False) -> None:
        """Close descriptors of deleted segments once no reader can still hold them."""
        with self.lock:
            now = self.clock()
            keep = []
            for retired_at, segment in self._retired:
                if force or now - retired_at > RETIRED_GRACE_S:
                    segment.close()
                else:
                    keep.append((retired_at, segment))
            self._retired = keep

    def close(self) -> None:
        """Clean shutdown: seal the active segment and checkpoint, so the next start trusts everything."""
        with self.lock:
            if not self.segments:
                return  # deleted (its files are gone): nothing to seal or checkpoint
            self.active.seal()
            self._write_recovery_point(self.active.base_offset)
            self.checkpoint_high_watermark()
            for segment in self.segments:
                segment.close()
            self.close_retired(force=True)

    def delete_files(self) -> None:
        """Remove the whole partition directory (topic deletion)."""
        with self.lock:
            # Emptied first: a flush that reads the list without the lock then finds no segment (LogDeleted)
            # rather than a closed one.
            doomed_segments, self.segments = self.segments, []
            for segment in doomed_segments:
                segment.delete()
                segment.close()
            self.close_retired(force=True)
            doomed = self.directory.with_name(self.directory.name + ".deleted")
            self.directory.rename(doomed)
            for path in doomed.iterdir():
                path.unlink()
            doomed.rmdir()
            fsync_directory(doomed.parent)

    # -- reading (any thread) --------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, upto: int | None = None) -> bytes:
        """Whole batches starting with the one holding `offset`, below `upto` (default: the high watermark).

        At least one batch is returned when one is available, even if it is larger than `max_bytes`, so a large
        record can never wedge a consumer.
        """
        limit = self.high_watermark if upto is None else upto
        with self.lock:
            start, end = self.log_start_offset, self.log_end_offset
            if offset < start or offset > end:
                raise OffsetOutOfRange(
                    f"offset {offset} is outside the log [{start}, {end}]", log_start_offset=start,
                    log_end_offset=end)
            if offset >= limit:
                return b""
            i = bisect.bisect_right(self._bases, offset) - 1
            segments = self.segments[i:]
        chunks: list[bytes] = []
        budget = max_bytes
        for n, segment in enumerate(segments):
            position = segment.position_of(offset) if n == 0 else 0
            data = segment.read(position, max(budget, batches.HEADER_SIZE))
            taken, last_next = self._whole_batches(data, segment, position, limit, first=not chunks)
            if taken:
                chunks.append(taken)
                budget -= len(taken)
            # Move on to the next segment only when this one is exhausted: stopping short of its end (budget or
            # limit) and continuing in the next would hand the reader a gap.
            if budget <= 0 or last_next >= limit or len(taken) < len(data):
                break
        return b"".join(chunks)

    @staticmethod
    def _whole_batches(data: bytes, segment: Segment, position: int, limit: int, first: bool) -> tuple[bytes, int]:
        """Cut `data` to whole batches below `limit`; the first batch is re-read whole if it was cut."""
        end = 0
        last_next = -1
        for pos, header in batches.iter_headers(data):
            if header.base_offset >= limit:
                break
            end = pos + header.size
            last_next = header.next_offset
        if end == 0 and first and len(data) >= batches.HEADER_SIZE:
            header = batches.read_header(data)
            if header.base_offset < limit:
                return segment.read(position, header.size), header.next_offset
        return data[:end], last_next

    def offset_for_timestamp(self, timestamp_ms: int) -> int:
        """First offset whose batch has a timestamp ≥ `timestamp_ms`; the log end offset when none has."""
        with self.lock:
            segments = list(self.segments)
        for segment in segments:
            if segment.max_timestamp_ms >= timestamp_ms:
                found = segment.offset_for_timestamp(timestamp_ms)
                if found is not None:
                    return max(found, self.log_start_offset)
        return self.log_end_offset

