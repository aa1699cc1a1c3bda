"""The metadata Raft journal: PySyncObj's log on disk, written into preallocated space so a full volume is an error.

Why not PySyncObj's own `FileJournal`: it grows its file through `mmap.resize`, which leaves a hole that the kernel
fills only when a page is first touched. On a full volume that touch is SIGBUS and the broker dies (exit 135).
Here every byte is reserved with `posix_fallocate` before it is written with `pwrite`, so running out of space is
`JournalFull` (ENOSPC) raised before anything changed, never a signal.

On-disk format, `<walDir>/raft.journal`: PySyncObj's, unchanged (a journal written by either opens in the other):
a 40-byte header (name 24 B, version 8 B, format u32, end offset u32), then entries `size u32 | index u64 | term u64
| command | size u32` up to the end offset. The bytes after the end offset are allocated zeros: the reserve.

The reserve (`reserve_bytes`, 256 KiB past the end): Raft's own entries (the no-op a new leader appends, entries a
follower receives) may use it; a command a client asked for is admitted only while the reserve can be kept
(`admits_command`). So a broker on a full volume refuses metadata changes with DISK_FULL yet can still be elected and
follow its leader — a restart on a full disk becomes ready, read-only — and changes are admitted again as soon as
space returns, with no restart.

Term, vote and commit index, `<walDir>/raft.journal.term`: two 4 KiB slots written in turn, each `magic | sequence
u64 | length u32 | crc32 u32 | JSON`; the valid slot with the higher sequence wins, so a write torn by a crash leaves
the previous one. Preallocated like the journal: a vote on a full disk is still durable (Raft needs that). The first
open of a journal from PySyncObj's own class reads its `raft.journal.meta`.

Durability: `flush()` (called after each applied command, see raft.py) is fdatasync.

Called only from PySyncObj's thread, except `admits_command` (the event loop, before a proposal) which only reads
two integers and may extend the file: `_lock` orders it with `add`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from pysyncobj.pickle import loads as pysyncobj_loads
from pysyncobj.pickle import to_bytes
from pysyncobj.version import VERSION as PYSYNCOBJ_VERSION

log = logging.getLogger(__name__)

NAME_SIZE, VERSION_SIZE = 24, 8
HEADER_BYTES = NAME_SIZE + VERSION_SIZE + 4 + 4
END_OFFSET_AT = NAME_SIZE + VERSION_SIZE + 4
FORMAT_VERSION = 1
RESERVE_BYTES = 256 * 1024   # room kept for Raft's own entries once clients are refused: hundreds of no-ops/commands
GROW_BYTES = 1024 * 1024     # extend by this much at a time (fewer fallocate calls; a small share of any volume)
SLOT_BYTES = 4096
_SLOT_HEAD = struct.Struct("<4sQII")
_SLOT_MAGIC = b"GQTM"


class JournalFull(OSError):
    """The volume holding the journal has no room for this write; nothing of it was written."""

    def __init__(self, path: Path) -> None:
        super().__init__(errno.ENOSPC, "no space left for the metadata journal", str(path))


def _header() -> bytes:
    name = b"PYSYNCOBJ".ljust(NAME_SIZE, b"\0")
    version = str(PYSYNCOBJ_VERSION).encode()[:VERSION_SIZE - 1].ljust(VERSION_SIZE, b"\0")
    return name + version + struct.pack("<II", FORMAT_VERSION, HEADER_BYTES)


def _allocate(fd: int, offset: int, length: int, path: Path) -> None:
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise JournalFull(path) from exc
        raise


class RaftJournal:
    """PySyncObj's `Journal` interface (add, clear, deleteEntriesFrom/To, indexing, term and vote) on a real file."""

    def __init__(self, path: Path, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.path = path
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self._entries: list[tuple[bytes, int, int]] = []
        self._full = False  # the last attempt to keep the reserve failed: logged once per episode
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if created:
                _allocate(self._fd, 0, HEADER_BYTES + reserve_bytes, path)
                os.pwrite(self._fd, _header(), 0)
                os.fsync(self._fd)
            self._allocated = os.fstat(self._fd).st_size
            self._end = self._load()
            self._fill_holes()
            self._term = TermStore(path.with_name(path.name + ".term"), path.with_name(path.name + ".meta"))
        except BaseException:
            os.close(self._fd)
            raise

    def _load(self) -> int:
        end = struct.unpack("<I", os.pread(self._fd, 4, END_OFFSET_AT))[0]
        offset = HEADER_BYTES
        while offset < end:
            size = struct.unpack("<I", os.pread(self._fd, 4, offset))[0]
            data = os.pread(self._fd, size, offset + 4)
            index, term = struct.unpack("<QQ", data[:16])
            self._entries.append((data[16:], index, term))
            offset += size + 8
        return offset

    def _fill_holes(self) -> None:
        """A journal from PySyncObj's mmap class may be sparse: only its written part is certainly backed."""
        try:
            _allocate(self._fd, 0, self._allocated, self.path)
        except JournalFull:
            self._allocated = self._end
            self._note_full()

    # -- space ----------------------------------------------------------------------------------------------------

    def _reserve(self, end: int) -> None:
        """Make [0, end) allocated; raises JournalFull (nothing changed) when the volume cannot hold it."""
        if end <= self._allocated:
            return
        target = max(end, self._allocated + GROW_BYTES)
        try:
            _allocate(self._fd, self._allocated, target - self._allocated, self.path)
        except JournalFull:
            _allocate(self._fd, self._allocated, end - self._allocated, self.path)  # the least that will do
            target = end
        self._allocated = target

    def admits_command(self) -> bool:
        """True when the volume has room beyond the reserve and the reserve is kept (extended if need be): a
        client's change is refused on a full volume even while the preallocated reserve could still hold it."""
        with self._lock:
            try:
                stats = os.fstatvfs(self._fd)
                if stats.f_bavail * stats.f_frsize < self.reserve_bytes:
                    raise JournalFull(self.path)
                self._reserve(self._end + self.reserve_bytes)
            except JournalFull:
                self._note_full()
                return False
            if self._full:
                self._full = False
                log.info("raft.journal_writable", extra={"path": str(self.path), "allocated": self._allocated})
            return True

    def _note_full(self) -> None:
        if not self._full:
            self._full = True
            log.warning("raft.journal_full", extra={
                "path": str(self.path), "reason": "the metadata volume is full: metadata changes are refused "
                "(DISK_FULL) until space returns; reads go on"})

    @property
    def full(self) -> bool:
        return self._full

    # -- PySyncObj's Journal interface ----------------------------------------------------------------------------

    def add(self, command: Any, idx: int, term: int) -> None:
        data = struct.pack("<QQ", idx, term) + to_bytes(command)
        size = struct.pack("<I", len(data))
        record = size + data + size
        with self._lock:
            try:
                self._reserve(self._end + len(record))
            except JournalFull:
                self._note_full()
                raise
            os.pwrite(self._fd, record, self._end)
            self._set_end(self._end + len(record))
            self._entries.append((data[16:], idx, term))

    def _set_end(self, end: int) -> None:
        os.pwrite(self._fd, struct.pack("<I", end), END_OFFSET_AT)
        self._end = end

    def clear(self) -> None:
        with self._lock:
            self._entries = []
            self._set_end(HEADER_BYTES)

    def __getitem__(self, item: Any) -> Any:
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802, N803  PySyncObj's interface
        with self._lock:
            removed = self._entries[entryFrom:]
            del self._entries[entryFrom:]
            end = self._end
            for _ in removed:
                size = struct.unpack("<I", os.pread(self._fd, 4, end - 4))[0]
                end -= size + 8
            self._set_end(end)

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802, N803
        """Drop the entries a snapshot covers: the rest is written again from the start (it only shrinks)."""
        kept = self._entries[entryTo:]
        self.clear()
        for command, idx, term in kept:
            self.add(command, idx, term)

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def _destroy(self) -> None:
        if self._fd >= 0:
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._term.close()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802, N803
        self._term.commit_index = raftCommitIndex

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        return self._term.commit_index

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:  # noqa: N802, N803
        # Raft: term and vote are durable before any message that reflects them is sent.
        self._term.store(term, votedForNodeId)

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._term.term

    def getVotedForNodeId(self) -> Any:  # noqa: N802
        return self._term.voted_for

    def onOneSecondTimer(self) -> None:  # noqa: N802
        self._term.store_commit_index()


class TermStore:
    """Current term, vote and commit index in two alternating preallocated slots (see the module docstring)."""

    def __init__(self, path: Path, legacy_meta: Path) -> None:
        self.path = path
        created = not path.exists()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.term, self.voted_for, self.commit_index, self._sequence = 0, None, 1, 0
        self._saved_commit_index = 1
        try:
            if created:
                _allocate(self._fd, 0, 2 * SLOT_BYTES, path)
                os.fsync(self._fd)
                self._read_legacy(legacy_meta)
            else:
                self._read_slots()
        except BaseException:
            os.close(self._fd)
            raise
        self._saved_commit_index = self.commit_index

    def _read_legacy(self, legacy_meta: Path) -> None:
        try:
            meta = pysyncobj_loads(legacy_meta.read_bytes())
        except (OSError, ValueError, EOFError):
            return  # a first start: no metadata yet
        self.term = int(meta.get("currentTerm", 0))
        self.voted_for = meta.get("votedForNodeId")
        self.commit_index = int(meta.get("raftCommitIndex", 1))

    def _read_slots(self) -> None:
        best: tuple[int, dict[str, Any]] | None = None
        for slot in range(2):
            raw = os.pread(self._fd, SLOT_BYTES, slot * SLOT_BYTES)
            if len(raw) < _SLOT_HEAD.size:
                continue
            magic, sequence, length, crc = _SLOT_HEAD.unpack_from(raw)
            payload = raw[_SLOT_HEAD.size:_SLOT_HEAD.size + length]
            if magic != _SLOT_MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
                continue  # never written, or torn by a crash: the other slot holds the last good state
            if best is None or sequence > best[0]:
                best = (sequence, json.loads(payload))
        if best is not None:
            self._sequence, state = best
            self.term, self.voted_for, self.commit_index = state["term"], state["votedFor"], state["commitIndex"]

    def store(self, term: int, voted_for: Any) -> None:
        self.term, self.voted_for = term, voted_for
        self._write()

    def store_commit_index(self) -> None:
        if self.commit_index != self._saved_commit_index:
            self._write()

    def _write(self) -> None:
        payload = json.dumps({"term": self.term, "votedFor": self.voted_for,
                              "commitIndex": self.commit_index}).encode()
        if _SLOT_HEAD.size + len(payload) > SLOT_BYTES:
            raise ValueError(f"Raft term record of {len(payload)} bytes does not fit a {SLOT_BYTES}-byte slot")
        sequence = self._sequence + 1
        record = _SLOT_HEAD.pack(_SLOT_MAGIC, sequence, len(payload), zlib.crc32(payload)) + payload
        os.pwrite(self._fd, record.ljust(SLOT_BYTES, b"\0"), (sequence % 2) * SLOT_BYTES)
        os.fdatasync(self._fd)
        self._sequence = sequence
        self._saved_commit_index = self.commit_index

    def close(self) -> None:
        if self._fd >= 0:
            self.store_commit_index()
            os.close(self._fd)
            self._fd = -1
