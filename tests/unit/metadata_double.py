"""An in-memory one-member metadata group, for unit tests that run a whole `Broker` on temp files.

Why a double: the broker's metadata group is PySyncObj, which binds its Raft port even as a one-member group; a unit
test opens no socket (tests/unit_isolation.py), and probing a free port for it raced other tests. What a one-member
group does is simple and is kept exactly: every command is applied at once by the real state machine
(`metadata.apply_command`, on a copy, a conflict leaving the state unchanged), the broker is told through the same
`on_applied` callback, and the proposer's result arrives one event-loop turn later, after that callback's work is
scheduled — as PySyncObj's thread resolves it. The state survives a broker restart on the same WAL directory (a
pickle beside where PySyncObj keeps its journal), so restart tests keep their meaning. Elections, quorum loss and
real replication are the integration tests' subject (tests/integration/test_raft_metadata.py, test_cluster.py).
"""

from __future__ import annotations

import asyncio
import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from goqueue.replication.commands import Command
from goqueue.replication.metadata import CommandResult, MetadataConflict, apply_command, empty_state
from goqueue.replication.raft import PROPOSE_TIMEOUT_S
from goqueue.replication.state import MetadataState

SNAPSHOT = "metadata-double.pickle"


class InMemoryMetadata:
    """`goqueue.replication.raft.MetadataGroup` for a broker alone: always ready, always the leader."""

    def __init__(self, self_address: str, partners: list[str], wal_dir: Path, password: str | None,
                 on_applied: Callable[[Command, CommandResult], None] | None = None,
                 bind_address: str | None = None) -> None:
        assert not partners, "the in-memory metadata group has one member: a cluster test is an integration test"
        del password, bind_address  # nothing is sent or bound
        self.self_address = self_address
        self._on_applied = on_applied
        wal_dir.mkdir(parents=True, exist_ok=True)
        self._snapshot = wal_dir / SNAPSHOT
        self._state: MetadataState = (pickle.loads(self._snapshot.read_bytes()) if self._snapshot.exists()
                                      else empty_state())
        self.destroyed = False

    @property
    def state(self) -> MetadataState:
        return self._state

    async def propose(self, command: Command, timeout_s: float = PROPOSE_TIMEOUT_S) -> CommandResult:
        del timeout_s  # a one-member group commits at once
        assert not self.destroyed, "a command proposed after the metadata group was stopped"
        updated = copy.deepcopy(self._state)
        result: CommandResult | MetadataConflict
        try:
            applied = apply_command(updated, command)
        except MetadataConflict as exc:
            result = exc
        else:
            result = applied
            self._state = updated  # copy-on-write, as RaftMetadata: readers keep the snapshot they hold
            self._snapshot.write_bytes(pickle.dumps(updated))
            if self._on_applied is not None:
                self._on_applied(command, applied)
        answered: asyncio.Future[CommandResult | MetadataConflict] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(answered.set_result, result)
        result = await answered
        if isinstance(result, MetadataConflict):
            raise result
        return result

    def is_ready(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"self": self.self_address, "leader": self.self_address, "raft_term": 1,
                "commit_idx": self._state.get("applied", 0)}

    def leader_address(self) -> str | None:
        return self.self_address

    def is_leader(self) -> bool:
        return True

    def connected_partners(self) -> set[str]:
        return set()

    def destroy_synchronous(self) -> None:
        self.destroyed = True
