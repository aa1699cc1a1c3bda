"""Copy-on-write of the metadata (`metadata.writable_copy`, used by `RaftMetadata._apply`): a command on one
partition copies that partition only and shares the rest, and no command changes the snapshot it was applied to.

Why it matters (issue 18 item 6): every applied command used to deep-copy the whole state, 7 ms at 1,000 partitions
x RF 3, and a broker's failure or return makes a command per partition it holds — quadratic in partitions. The
sharing is checked by object identity, so a return of the whole copy fails here without any timing."""

from __future__ import annotations

import copy

import pytest

from goqueue.replication import commands as cmds
from goqueue.replication.commands import Command
from goqueue.replication.metadata import MetadataConflict, apply_command, writable_copy
from goqueue.replication.raft import RaftMetadata
from goqueue.replication.state import MetadataState, empty_state

pytestmark = pytest.mark.unit

PARTITIONS = 50


def cluster_state() -> MetadataState:
    state = empty_state()
    for broker in range(3):
        apply_command(state, cmds.register_broker(broker, host=f"b{broker}", http_port=1, grpc_port=2, internal_port=4,
                                                  raft_address=f"b{broker}:3", zone=None, directory_id=f"d{broker}"))
    for name in ("big", "other"):
        apply_command(state, cmds.create_topic(
            name, replication_factor=3, config={}, created_at_s=0.0,
            assignment={p: [p % 3, (p + 1) % 3, (p + 2) % 3] for p in range(PARTITIONS)}))
    return state


PARTITION_COMMANDS: list[Command] = [
    cmds.elect_leader("big", 7, expected_epoch=0, expected_version=None, leader=1, isr=[1, 2]),
    cmds.change_isr("big", 7, leader_epoch=0, expected_version=0, isr=[1, 2]),
    cmds.leave_isr("big", 7, 2),
    cmds.reassign("big", 7, replicas=[1, 2, 0], expected_version=0),
]


@pytest.mark.parametrize("command", PARTITION_COMMANDS, ids=lambda c: c["op"])
def test_a_partition_command_copies_its_partition_and_shares_the_rest(command: Command) -> None:
    state = cluster_state()
    before = copy.deepcopy(state)
    updated = writable_copy(state, command)
    expected = copy.deepcopy(state)
    assert apply_command(updated, command) == apply_command(expected, command)
    assert updated == expected  # the same result as on a whole copy
    assert state == before  # the published snapshot did not change
    big, old = updated["topics"]["big"]["partition_state"], state["topics"]["big"]["partition_state"]
    assert all(big[p] is old[p] for p in range(PARTITIONS) if p != 7)  # shared, not copied
    assert big[7] is not old[7]
    assert updated["topics"]["other"] is state["topics"]["other"]
    assert updated["brokers"] is state["brokers"]


def test_other_commands_and_refused_ones_leave_the_snapshot_unchanged() -> None:
    state = cluster_state()
    before = copy.deepcopy(state)
    for command in (cmds.create_topic("new", replication_factor=1, config={}, created_at_s=0.0,
                                      assignment={0: [0]}),
                    cmds.set_topic_config("big", {"retentionMaxAge": 60}),
                    cmds.delete_topic("other")):
        apply_command(writable_copy(state, command), command)
    with pytest.raises(MetadataConflict):  # a stale epoch: refused
        apply_command(writable_copy(state, cmds.elect_leader("big", 3, expected_epoch=9, expected_version=None,
                                                             leader=1, isr=[1])),
                      cmds.elect_leader("big", 3, expected_epoch=9, expected_version=None, leader=1, isr=[1]))
    assert state == before


class _Journal:
    def flush(self) -> None:
        pass


def test_the_raft_apply_copies_only_the_changed_partition() -> None:
    raft = object.__new__(RaftMetadata)  # no PySyncObj node: `_apply` run as PySyncObj applies a command
    raft.__dict__.update(metadata=cluster_state(), _journal=_Journal(), _on_applied=None)
    published = raft.state
    RaftMetadata._apply(raft, cmds.change_isr("big", 7, leader_epoch=0, expected_version=0, isr=[1, 2]),
                        _doApply=True)
    assert raft.state is not published
    assert raft.state["topics"]["big"]["partition_state"][7]["isr"] == [1, 2]
    assert published["topics"]["big"]["partition_state"][7]["isr"] == [1, 2, 0]
    assert raft.state["topics"]["big"]["partition_state"][8] is published["topics"]["big"]["partition_state"][8]
