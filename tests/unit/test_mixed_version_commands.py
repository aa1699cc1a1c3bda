"""During a rolling upgrade from the release before the internal listener, commands that release does not know are
refused with NOT_READY: an old broker refuses an unknown command and keeps its state, a new one applies it, and from
then on the two disagree (a partition version bumped on one side only makes an old leader's ISR change apply on the
old brokers and be refused on the new ones). Commands both releases know go through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from goqueue.cluster.membership import UNKNOWN_TO_PREVIOUS_VERSION, ClusterMembership
from goqueue.config import Settings
from goqueue.errors import NotReady
from goqueue.replication import commands
from goqueue.replication.commands import Command

pytestmark = pytest.mark.unit

PEERS = ["127.0.0.1:17001", "127.0.0.1:17002", "127.0.0.1:17003"]


class RecordingRaft:
    """Just what `ClusterMembership.propose` uses: the applied state, and what was proposed."""

    def __init__(self, brokers: dict[int, dict[str, Any]]) -> None:
        self.state = {"brokers": brokers, "topics": {}, "groups": {}, "paused_all": False, "applied": 0}
        self.proposed: list[Command] = []

    async def propose(self, command: Command, timeout_s: float = 10.0) -> None:
        self.proposed.append(command)


def membership(upgraded: set[int]) -> tuple[ClusterMembership, RecordingRaft]:
    settings = Settings.model_validate({"broker": {"id": 0}, "cluster": {"peers": PEERS, "password": "p"}})
    entry = {"host": "127.0.0.1", "http_port": 8080, "grpc_port": 9000, "raft_address": "x", "zone": None}
    raft = RecordingRaft({b: {**entry, **({"internal_port": 8081, "metadata_version": commands.METADATA_VERSION}
                                         if b in upgraded else {})} for b in range(3)})
    member = ClusterMembership(settings, on_applied=lambda: None)
    member.raft = raft  # type: ignore[assignment]  # a stand-in with the two members propose reads
    return member, raft


NEW = [commands.begin_reassignment("t", 0, target=[1, 2], expected_version=0),
       commands.upsert_user("alice", {"salt": b"s", "iterations": 4096, "stored_key": b"k", "server_key": b"k"}),
       commands.set_user_quotas("alice", producer_byte_rate=1024, consumer_byte_rate=None),
       commands.set_replication_throttle(1_000_000)]


@pytest.mark.parametrize("command", NEW, ids=lambda c: c["op"])
def test_a_command_the_previous_version_lacks_waits_for_the_upgrade_to_finish(command: Command) -> None:
    member, raft = membership(upgraded={0, 1})
    with pytest.raises(NotReady, match=r"brokers \[2\] still run the previous version"):
        asyncio.run(member.propose(command))
    assert raft.proposed == []
    done, raft = membership(upgraded={0, 1, 2})
    asyncio.run(done.propose(command))
    assert raft.proposed == [command]


def test_commands_both_versions_know_go_through_mid_upgrade() -> None:
    member, raft = membership(upgraded={0})
    known = [commands.barrier(0),
             commands.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1, isr=[0, 1])]
    for command in known:
        asyncio.run(member.propose(command))
    assert raft.proposed == known
    assert not {c["op"] for c in known} & UNKNOWN_TO_PREVIOUS_VERSION


def test_an_election_checks_the_partition_version_only_once_every_broker_applies_it_alike() -> None:
    """The previous release ignores expected_version: mid-upgrade an election goes out without it (epoch only, as
    that release's did); once every broker registered metadata version 2 it carries it."""
    election = commands.elect_leader("t", 0, expected_epoch=3, expected_version=7, leader=1, isr=[0, 1])
    member, raft = membership(upgraded={0, 1})
    asyncio.run(member.propose(election))
    assert raft.proposed == [commands.elect_leader("t", 0, expected_epoch=3, expected_version=None, leader=1,
                                                   isr=[0, 1])]
    done, raft = membership(upgraded={0, 1, 2})
    asyncio.run(done.propose(election))
    assert raft.proposed == [election]
    assert raft.proposed[0]["expected_version"] == 7
