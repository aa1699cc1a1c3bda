"""The metadata Raft group: PySyncObj replicating `metadata.apply_command` across brokers on `broker.raftPort`.

Why PySyncObj and how it is fenced in:
* Its wire format is pickle, so `cluster.password` is always set for a multi-broker cluster (the broker refuses to
  start without it) and port 7000 must never leave the cluster network; and whatever arrives is unpickled as plain
  data only (`raft_codec.py`), so no peer — anonymous, or holding the password — can make the broker run code.
* Its journal (`<walDir>/raft.journal`) is ours (`raft_journal.RaftJournal`, PySyncObj's format): written into
  preallocated space, so a full volume refuses metadata changes with DISK_FULL instead of the SIGBUS PySyncObj's
  mmap'd journal died of, and the broker stays up, serving reads. The full dump (`<walDir>/raft.dump`) is
  PySyncObj's; a dump that fails for lack of space only postpones log compaction.
  Decision: every broker fdatasyncs the journal right after applying each command (`_apply` below), so a
  command a broker has applied survives its own power loss; a command that was committed but applied by no
  surviving broker can only be lost when a majority loses power at the same moment — the window is the time
  between commit and apply (milliseconds). Partition data does not depend on it: it is fsynced by the storage
  engine and leader epochs are fenced again by the data path. Metadata backups (`goqueue-admin backup metadata`)
  are the recovery for the rest. Written down in docs/ARCHITECTURE.md.
* A leader cut off from its peers keeps acting until `leaderFallbackTimeout`; we tune it down to a few seconds,
  and every partition-state change is a compare-and-set on epochs, so a stale leader's proposals are refused.
* Versions before 0.3.17 could lose committed entries on a full-cluster restart: pyproject pins ≥ 0.3.17.

A single broker runs the same code as a one-member group (it is leader at once), so there is one metadata path.
Calls from the event loop go through `propose`, which waits on a future resolved from PySyncObj's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pysyncobj.syncobj
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

from goqueue.errors import DiskFull, NotReady, Timeout
from goqueue.replication import raft_codec
from goqueue.replication.commands import Command
from goqueue.replication.metadata import CommandResult, MetadataConflict, apply_command, writable_copy
from goqueue.replication.raft_journal import JournalFull, RaftJournal
from goqueue.replication.raft_tls import RaftTls
from goqueue.replication.raft_transport import TransportLimits, guarded_transport
from goqueue.replication.state import MetadataState, empty_state

log = logging.getLogger(__name__)

PROPOSE_TIMEOUT_S = 10.0
# Changes a client asks for that make the metadata grow: refused with DISK_FULL while the metadata volume is full.
# Everything else may use the journal's reserve: what keeps the cluster running (barrier, register_broker,
# elect_leader, change_isr, leave_isr, replace_storage, and completing or cancelling a reassignment already begun)
# and the ways out of a full disk (delete_topic, set_topic_config for a shorter retention, delete_user, remove_acl).
GROWTH_OPS = frozenset({"create_topic", "grow_partitions", "reassign", "begin_reassignment", "set_replication_throttle",
                        "set_group", "set_paused_all", "restore", "upsert_user", "set_user_quotas",
                        "add_acl"})
NO_LEADER_RETRY_S = 0.1  # how often a command is offered again while a metadata election runs


class MetadataGroup(Protocol):
    """What a broker uses of its metadata group. `RaftMetadata` is the one every broker runs; the unit tests run a
    broker over an in-memory one-member group instead (tests/unit/metadata_double.py), so they open no socket."""

    @property
    def state(self) -> MetadataState:
        """The applied metadata, never changed once published: code outside replication/ reads it through
        `view.MetadataView`."""

    async def propose(self, command: Command, timeout_s: float = PROPOSE_TIMEOUT_S) -> CommandResult: ...

    def is_ready(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    def leader_address(self) -> str | None: ...

    def is_leader(self) -> bool: ...

    def open_connections(self) -> int:
        """Connections on the Raft port now (goqueue_open_connections{port="raft"})."""
        transport = getattr(self, "_SyncObj__transport", None)
        count = getattr(transport, "open_connections", None)
        return int(count()) if count is not None else 0

    def connected_partners(self) -> set[str]: ...

    def destroy_synchronous(self) -> None: ...


# (self address, partner addresses, WAL directory, password, called after each applied command, bind address)
Applied = CommandResult | MetadataConflict  # what `_apply` returns to the proposer: a conflict is not raised there
OnApplied = Callable[[Command, CommandResult], None]
MetadataFactory = Callable[[str, list[str], Path, str | None, OnApplied | None, str | None], MetadataGroup]


_JOURNALS: dict[str, RaftJournal] = {}  # opened by RaftMetadata, handed to SyncObj.__init__ by path
_pysyncobj_create_journal = pysyncobj.syncobj.createJournal


def _create_journal(journal_file: str | None) -> Any:
    """PySyncObj has no journal-class setting: its module-level factory is replaced once, and hands out ours."""
    journal = _JOURNALS.pop(journal_file, None) if journal_file is not None else None
    return journal if journal is not None else _pysyncobj_create_journal(journal_file)


pysyncobj.syncobj.createJournal = _create_journal


class _QuietJournalFull(logging.Filter):
    """PySyncObj logs a traceback per tick while a full journal fails its writes; `raft.journal_full` says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], JournalFull))


logging.getLogger("pysyncobj.syncobj").addFilter(_QuietJournalFull())
raft_codec.install()  # from here on PySyncObj unpickles plain data only (raft_codec.py: no code from the network)


class RaftMetadata(SyncObj):  # type: ignore[misc]  # PySyncObj ships no type information
    def __init__(self, self_address: str, partners: list[str], wal_dir: Path, password: str | None,
                 on_applied: OnApplied | None = None, bind_address: str | None = None,
                 *, transport_limits: TransportLimits | None = None, tls: RaftTls | None = None) -> None:
        """`transport_limits` bound the Raft port (connections, frames, first-message deadline); the broker always
        passes them (BrokerServer), PySyncObj's unbounded transport is used only without. `tls`: the port speaks
        mutual TLS (needs `transport_limits`)."""
        wal_dir.mkdir(parents=True, exist_ok=True)
        journal_file = str(wal_dir / "raft.journal")
        self._journal = RaftJournal(Path(journal_file))
        _JOURNALS[journal_file] = self._journal
        conf = SyncObjConf(
            password=password,
            journalFile=journal_file,
            fullDumpFile=str(wal_dir / "raft.dump"),
            bindAddress=bind_address,
            raftMinTimeout=0.5, raftMaxTimeout=1.5,          # elections within ~1.5 s of a leader's death
            leaderFallbackTimeout=3.0,                       # a cut-off leader steps down after 3 s, not 30
            # Peers are StatefulSet DNS names whose pod IPs change on every restart: PySyncObj's default 600 s DNS
            # cache would keep dialling a dead IP through a whole rolling upgrade.
            dnsCacheTime=2.0, dnsFailCacheTime=1.0,
            connectionTimeout=2.0,                           # a dead peer is noticed (and its partitions moved) in 2 s
            logCompactionMinEntries=2000,
            dynamicMembershipChange=False,
        )
        # Attributes set before SyncObj.__init__ are PySyncObj "properties": never serialized into its dump. The
        # metadata itself is created lazily in `_apply`/`state`, after it, so snapshots and dumps carry it.
        self._on_applied = on_applied
        if transport_limits is None:
            super().__init__(self_address, partners, conf)
        else:
            super().__init__(self_address, partners, conf, transportClass=guarded_transport(transport_limits, tls))

    @property
    def state(self) -> MetadataState:
        """A snapshot of the applied metadata: never mutated after it is published (see `_apply`)."""
        # Never create the attribute here: SyncObj.__init__ reads every attribute (this property included) before
        # it records which ones it will never serialize, and `metadata` must not be one of them. `_apply` creates it.
        state: MetadataState | None = self.__dict__.get("metadata")
        return state if state is not None else empty_state()

    # The only replicated method: PySyncObj numbers them in sorted name order and journals the number, so another one
    # named before `_apply` would make every existing journal call it instead (tests/fixtures/upgrade).
    @replicated  # type: ignore[untyped-decorator]
    def _apply(self, command: Command) -> Applied:
        """Runs on every broker, in log order, in PySyncObj's thread."""
        # Copy-on-write: readers on the event loop hold a snapshot (`state`) and never see a dict change size
        # under them; the swap of one reference is atomic. Only what the command changes is copied.
        updated = writable_copy(self.state, command)
        result: Applied
        try:
            result = apply_command(updated, command)
            self.__dict__["metadata"] = updated
        except MetadataConflict as exc:
            result = exc
        self._flush_journal()
        if self._on_applied is not None and not isinstance(result, MetadataConflict):
            self._on_applied(command, result)
        return result

    def _flush_journal(self) -> None:
        self._journal.flush()

    # -- event-loop API ------------------------------------------------------------------------------------------

    async def propose(self, command: Command, timeout_s: float = PROPOSE_TIMEOUT_S) -> CommandResult:
        """Replicate a command and return its result once applied here; raises MetadataConflict, NotReady, Timeout.

        While no leader is known (an election: a broker died or rejoined) the command never entered any log, so it
        is offered again until `timeout_s` — an admin request during an election waits for it instead of failing.
        A command that reached a leader which then lost leadership (LEADER_CHANGED) may still commit: that one
        is not repeated, the caller hears NOT_READY and decides."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if command["op"] in GROWTH_OPS and not self._journal.admits_command():
            raise DiskFull(f"metadata change {command['op']} refused: the metadata volume (storage.walDir) is "
                           "full; reads go on, and changes are accepted again once space is freed")
        while True:
            future: asyncio.Future[Applied] = loop.create_future()

            def done(result: Applied, error: int, future: asyncio.Future[Applied] = future) -> None:
                loop.call_soon_threadsafe(_resolve, future, result, error)

            self._apply(command, callback=done)
            try:
                # Not asyncio.wait_for: on Python 3.11 it returns the result of a future that completes as its
                # caller is cancelled, swallowing the cancellation (fixed in 3.12). A stopping broker's ISR upkeep,
                # cancelled as its ISR change committed, then ticked on for good and the broker never exited.
                # A commit landing in the very turn the deadline passes is reported as Timeout, which callers
                # already take as "may or may not have committed" (as with LEADER_CHANGED).
                async with asyncio.timeout_at(deadline):
                    result = await future
            except TimeoutError:
                raise Timeout(f"metadata change {command['op']} not committed within {timeout_s:.0f}s "
                              "(no metadata quorum?)") from None
            except _NoLeaderYet as exc:
                if loop.time() + NO_LEADER_RETRY_S >= deadline:
                    raise NotReady(f"no metadata leader right now ({exc}); retry") from None
                await asyncio.sleep(NO_LEADER_RETRY_S)
                continue
            if isinstance(result, MetadataConflict):
                raise result
            return result

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.getStatus()
        return status

    def leader_address(self) -> str | None:
        leader = self._getLeader()
        return None if leader is None else str(getattr(leader, "address", leader))

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def is_ready(self) -> bool:
        """Caught up with a leader: the metadata here is current enough to act on."""
        return bool(self.isReady())

    def open_connections(self) -> int:
        """Connections on the Raft port now (goqueue_open_connections{port="raft"})."""
        transport = getattr(self, "_SyncObj__transport", None)
        count = getattr(transport, "open_connections", None)
        return int(count()) if count is not None else 0

    def connected_partners(self) -> set[str]:
        status = self.status()
        prefix = "partner_node_status_server_"
        return {key[len(prefix):] for key, value in status.items() if key.startswith(prefix) and value == 2}


class _NoLeaderYet(Exception):
    """The command was not taken into any Raft log (no leader known, or offered to a non-leader): safe to repeat."""


def _resolve(future: asyncio.Future[Applied], result: Applied, error: int) -> None:
    if future.done():
        return
    if error == FAIL_REASON.SUCCESS:
        future.set_result(result)
    elif error in (FAIL_REASON.MISSING_LEADER, FAIL_REASON.NOT_LEADER):
        future.set_exception(_NoLeaderYet(_reason(error)))
    elif error == FAIL_REASON.LEADER_CHANGED:
        future.set_exception(NotReady(f"the metadata leader changed before the change committed "
                                      f"({_reason(error)}); it may or may not have been applied: check, then retry"))
    else:
        future.set_exception(Timeout(f"metadata change failed: {_reason(error)}"))


def _reason(error: int) -> str:
    for name in dir(FAIL_REASON):
        if not name.startswith("_") and getattr(FAIL_REASON, name) == error:
            return name.lower()
    return str(error)
