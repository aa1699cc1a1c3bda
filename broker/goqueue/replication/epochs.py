"""Leader-epoch cache of one partition log: at which offset each leader epoch started.

On-disk format: `<log dir>/leader-epoch-checkpoint`, JSON `[[epoch, start_offset], …]` ascending, replaced
atomically. It is what lets a follower find where its log diverges from a new leader (Kafka's KIP-101): the
follower asks "where does my latest epoch end in your log?" and truncates there, instead of trusting the high
watermark, which can lose acknowledged records or keep divergent ones.

After a crash: entries starting at or beyond the recovered log end offset are dropped (`truncate_from_end`).
Called from the event loop only.
"""

from __future__ import annotations

import json
from pathlib import Path

from goqueue.storage.sync import write_file_atomically

CHECKPOINT_FILE = "leader-epoch-checkpoint"
UNDEFINED = -1


class EpochCache:
    def __init__(self, directory: Path) -> None:
        self.path = directory / CHECKPOINT_FILE
        self.entries: list[tuple[int, int]] = []
        if self.path.exists():
            try:
                self.entries = [(int(e), int(o)) for e, o in json.loads(self.path.read_text())]
            except (ValueError, TypeError):
                self.entries = []  # rebuilt from the next appends; only divergence detection is weakened

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1][0] if self.entries else UNDEFINED

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset` (no-op when it is already the latest)."""
        if self.entries and epoch <= self.entries[-1][0]:
            return
        self.entries.append((epoch, start_offset))
        try:
            self._save()
        except OSError:
            self.entries.pop()  # not on disk, so not assigned: the caller must not lead on an epoch it may forget
            raise

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest epoch ≤ `epoch` we know, the offset where it ends): the follower truncates to the end offset.

        The end of an epoch is the start of the next known epoch, or our log end offset for the latest one.
        """
        found = UNDEFINED
        for index, (known, _start) in enumerate(self.entries):
            if known > epoch:
                return found, self.entries[index][1] if found != UNDEFINED else UNDEFINED
            found = known
        return found, log_end_offset if found != UNDEFINED else UNDEFINED

    def truncate_from_end(self, offset: int) -> None:
        """The log was cut at `offset`: forget epochs that start at or after it."""
        kept = [(e, o) for e, o in self.entries if o < offset]
        if kept != self.entries:
            self.entries = kept
            self._save()

    def _save(self) -> None:
        write_file_atomically(self.path, json.dumps(self.entries).encode())
