"""RaftJournal: PySyncObj's journal format on preallocated space, term and vote in alternating slots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pysyncobj.journal import FileJournal

from goqueue.replication.raft_journal import HEADER_BYTES, SLOT_BYTES, RaftJournal

pytestmark = pytest.mark.unit

ENTRIES = [(b"\x00", 1, 0), (b"create-topic-a", 2, 1), (b"x" * 5000, 3, 1), (b"change-isr", 4, 2)]


def _fill(journal: RaftJournal | FileJournal) -> None:
    for command, idx, term in ENTRIES:
        journal.add(command, idx, term)


def test_entries_survive_a_reopen_and_deletions_from_either_end(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = RaftJournal(path)
    _fill(journal)
    journal.deleteEntriesFrom(3)          # a follower cuts a conflicting tail
    journal.add(b"new-tail", 4, 3)
    journal.deleteEntriesTo(1)            # a snapshot covers the first entry
    journal._destroy()
    reopened = RaftJournal(path)
    assert [reopened[i] for i in range(len(reopened))] == [ENTRIES[1], ENTRIES[2], (b"new-tail", 4, 3)]
    reopened._destroy()


def test_a_journal_of_pysyncobjs_own_class_opens_with_its_term_and_vote(tmp_path: Path) -> None:
    """An upgraded broker keeps its Raft log and its vote: the format is PySyncObj's."""
    path = tmp_path / "raft.journal"
    legacy = FileJournal(str(path))
    _fill(legacy)
    legacy.setCurrentTerm(7, "broker-2:7000")
    legacy.setRaftCommitIndex(3)
    legacy.onOneSecondTimer()
    legacy._destroy()
    journal = RaftJournal(path)
    assert [journal[i] for i in range(len(journal))] == ENTRIES
    assert (journal.getCurrentTerm(), journal.getVotedForNodeId(), journal.getRaftCommitIndex()) == \
        (7, "broker-2:7000", 3)
    journal.add(b"after-upgrade", 5, 7)
    journal._destroy()
    back = FileJournal(str(path))  # and a downgrade reads what we wrote
    assert back[len(back) - 1] == (b"after-upgrade", 5, 7)
    back._destroy()


def test_every_byte_written_was_allocated_first(tmp_path: Path) -> None:
    """No hole for a page fault to find: the file's blocks cover its size (a sparse file would cover less)."""
    path = tmp_path / "raft.journal"
    journal = RaftJournal(path)
    for i in range(300):
        journal.add(b"c" * 4000, i + 1, 1)
    stat = os.stat(path)
    assert stat.st_size > HEADER_BYTES + 300 * 4000
    assert stat.st_blocks * 512 >= stat.st_size
    journal._destroy()


def test_a_torn_term_write_leaves_the_previous_term(tmp_path: Path) -> None:
    path = tmp_path / "raft.journal"
    journal = RaftJournal(path)
    journal.setCurrentTerm(4, "a:7000")
    journal.setCurrentTerm(5, "b:7000")   # written to the other slot
    journal._destroy()
    term_file = path.with_name("raft.journal.term")
    with term_file.open("r+b") as f:      # a crash tore the newer slot (sequence 2 lives in slot 0)
        f.seek(0 * SLOT_BYTES + 30)
        f.write(b"\xff\xff")
    reopened = RaftJournal(path)
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (4, "a:7000")
    reopened._destroy()


def test_client_commands_are_refused_while_the_volume_cannot_keep_the_reserve(tmp_path: Path) -> None:
    # A reserve larger than any volume stands in for a full one (the tmpfs integration test fills a real one).
    journal = RaftJournal(tmp_path / "raft.journal")
    assert journal.admits_command()
    journal.reserve_bytes = 2**60
    assert not journal.admits_command()
    assert journal.full
    journal.reserve_bytes = 64 * 1024     # space came back
    assert journal.admits_command()
    assert not journal.full
    journal._destroy()
