"""commands.py builds every metadata command as journals hold it; view.py reads the metadata without copying it and
without letting a reader write."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import get_args

import pytest
from mypy import api as mypy_api

import goqueue
from goqueue.replication import commands as cmds
from goqueue.replication.metadata import MetadataConflict, apply_command, empty_state
from goqueue.replication.state import AclEntry, UserEntry
from goqueue.replication.view import MetadataView

pytestmark = pytest.mark.unit

CREDENTIAL: UserEntry = {"salt": b"s", "iterations": 4096, "stored_key": b"k", "server_key": b"v"}
ACL: AclEntry = {"principal": "User:alice", "resource_type": "topic", "name": "t", "pattern": "literal",
                 "operation": "produce", "allow": True}
ALL_OPS = {typed.__annotations__["op"].__args__[0] for typed in get_args(cmds.Command)}


def test_each_constructor_builds_the_dict_older_versions_journaled() -> None:
    """The journal holds these dicts: a constructor that renamed, dropped or added a key would change its format."""
    assert cmds.barrier(2) == {"op": "barrier", "broker": 2}
    assert cmds.register_broker(1, host="h", http_port=8080, grpc_port=9000, raft_address="h:7000", zone="z",
                                directory_id="vol", internal_port=8081) == {
        "op": "register_broker", "id": 1, "host": "h", "http_port": 8080, "grpc_port": 9000,
        "raft_address": "h:7000", "zone": "z", "directory_id": "vol", "internal_port": 8081, "metadata_version": 2}
    assert cmds.replace_storage(1, "vol") == {"op": "replace_storage", "broker": 1, "directory_id": "vol"}
    assert cmds.create_topic("t", replication_factor=2, config={"cleanupPolicy": "compact"}, created_at_s=1.5,
                             assignment={0: (0, 1)}, internal=True) == {
        "op": "create_topic", "name": "t", "replication_factor": 2, "config": {"cleanupPolicy": "compact"},
        "created_at_s": 1.5, "assignment": {0: [0, 1]}, "internal": True}
    assert cmds.delete_topic("t") == {"op": "delete_topic", "name": "t"}
    assert cmds.grow_partitions("t", {1: [0], 2: [1]}) == {"op": "grow_partitions", "name": "t",
                                                            "assignment": {1: [0], 2: [1]}}
    assert cmds.set_topic_config("t", {"segmentBytes": 4096}) == {"op": "set_topic_config", "name": "t",
                                                                  "config": {"segmentBytes": 4096}}
    assert cmds.elect_leader("t", 0, expected_epoch=3, expected_version=None, leader=None, isr=(1,)) == {
        "op": "elect_leader", "topic": "t", "partition": 0, "expected_epoch": 3, "leader": None, "isr": [1]}
    assert cmds.change_isr("t", 0, leader_epoch=3, expected_version=7, isr=[0, 1]) == {
        "op": "change_isr", "topic": "t", "partition": 0, "leader_epoch": 3, "expected_version": 7, "isr": [0, 1]}
    assert cmds.leave_isr("t", 0, 2) == {"op": "leave_isr", "topic": "t", "partition": 0, "broker": 2}
    assert cmds.reassign("t", 0, replicas=(0, 3), expected_version=7) == {
        "op": "reassign", "topic": "t", "partition": 0, "replicas": [0, 3], "expected_version": 7}
    assert cmds.begin_reassignment("t", 0, target=(1, 2), expected_version=7) == {
        "op": "begin_reassignment", "topic": "t", "partition": 0, "target": [1, 2], "expected_version": 7}
    assert cmds.complete_reassignment("t", 0, expected_version=8) == {
        "op": "complete_reassignment", "topic": "t", "partition": 0, "expected_version": 8}
    assert cmds.cancel_reassignment("t", 0, expected_version=8) == {
        "op": "cancel_reassignment", "topic": "t", "partition": 0, "expected_version": 8}
    assert cmds.set_replication_throttle(None) == {"op": "set_replication_throttle", "bytes_per_s": None}
    assert cmds.set_group("g", paused=True) == {"op": "set_group", "group": "g", "paused": True}
    assert cmds.set_paused_all(True) == {"op": "set_paused_all", "paused": True}
    assert cmds.restore({}, {}) == {"op": "restore", "topics": {}, "groups": {}}


def test_users_and_acls_are_kept_in_the_metadata_and_read_through_the_view() -> None:
    state = empty_state()
    view = MetadataView(state)
    assert (dict(view.users), list(view.acls)) == ({}, [])  # metadata from before users existed
    assert cmds.upsert_user("alice", CREDENTIAL) == {"op": "upsert_user", "name": "alice", "credential": CREDENTIAL}
    apply_command(state, cmds.upsert_user("alice", CREDENTIAL))
    apply_command(state, cmds.upsert_user("alice", {**CREDENTIAL, "salt": b"new"}))  # a new password
    apply_command(state, cmds.add_acl(ACL))
    assert view.users["alice"]["salt"] == b"new"
    assert list(view.acls) == [ACL]
    with pytest.raises(MetadataConflict, match="exists already"):
        apply_command(state, cmds.add_acl(ACL))
    apply_command(state, cmds.remove_acl(ACL))
    with pytest.raises(MetadataConflict, match="no such ACL"):
        apply_command(state, cmds.remove_acl(ACL))
    apply_command(state, cmds.delete_user("alice"))
    with pytest.raises(MetadataConflict, match="does not exist"):
        apply_command(state, cmds.delete_user("alice"))
    assert (dict(view.users), list(view.acls)) == ({}, [])


def test_user_and_acl_commands_are_plain_data_for_the_raft_codec() -> None:
    from goqueue.replication import raft_codec

    for command in (cmds.upsert_user("alice", CREDENTIAL), cmds.add_acl(ACL)):
        assert raft_codec.loads(pickle.dumps(command)) == command


def test_a_command_holds_no_reference_to_what_the_proposer_keeps_changing() -> None:
    """A proposer's list changed after proposing must not change the command on its way to the journal."""
    isr, assignment = [0, 1], {0: [0, 1]}
    elect = cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=0, isr=isr)
    create = cmds.create_topic("t", replication_factor=2, config={}, created_at_s=0.0, assignment=assignment)
    isr.append(2)
    assignment[0].append(2)
    assert (elect["isr"], create["assignment"]) == ([0, 1], {0: [0, 1]})


def test_every_command_type_is_applied() -> None:
    """An op in the `Command` union that `apply_command` did not know would be refused on every broker."""
    state = empty_state()
    built = [
        cmds.barrier(0),
        *(cmds.register_broker(b, host="h", http_port=1, grpc_port=2, raft_address=f"h:{b}", zone=None,
                               directory_id=f"vol-{b}", internal_port=3) for b in range(4)),
        cmds.create_topic("t", replication_factor=3, config={}, created_at_s=0.0, assignment={0: [0, 1, 2]}),
        cmds.grow_partitions("t", {1: [1, 2, 0]}),
        cmds.set_topic_config("t", {"minInsyncReplicas": 2}),
        cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0, 1, 2]),
        cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1, isr=[0, 1, 2]),
        cmds.leave_isr("t", 0, 0),
        cmds.reassign("t", 0, replicas=[1, 2, 3], expected_version=3),
        cmds.set_replication_throttle(1024),
        cmds.begin_reassignment("t", 0, target=[2, 3], expected_version=4),
        cmds.cancel_reassignment("t", 0, expected_version=5),
        cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=6),
        cmds.complete_reassignment("t", 0, expected_version=7),
        cmds.replace_storage(2, "vol-2b"),
        cmds.set_group("g", coordinator=1),
        cmds.set_paused_all(True),
        cmds.delete_topic("t"),
        cmds.restore({}, {}),
        cmds.upsert_user("alice", CREDENTIAL),
        cmds.set_user_quotas("alice", producer_byte_rate=1, consumer_byte_rate=None),
        cmds.add_acl(ACL),
        cmds.remove_acl(ACL),
        cmds.delete_user("alice"),
    ]
    assert {command["op"] for command in built} == ALL_OPS
    for command in built:
        apply_command(state, command)
    assert state["applied"] == len(built)
    with pytest.raises(MetadataConflict, match="unknown metadata command 'explode'"):
        apply_command(state, {"op": "explode"})  # type: ignore[typeddict-item]  # what a newer version might send


def test_the_view_reads_the_published_state_itself() -> None:
    state = empty_state()
    apply_command(state, cmds.create_topic("t", replication_factor=1, config={}, created_at_s=0.0,
                                           assignment={0: [4], 1: [5]}))
    view = MetadataView(state)
    assert view.state is state, "no copy: every produce looks up its leader through it"
    assert (view.leader("t", 1), view.leader("t", 2), view.leader("nope", 0)) == (5, None, None)
    assert view.partition("t", 0) is state["topics"]["t"]["partition_state"][0]
    assert (view.topic("nope"), view.broker(4), view.paused_all, view.applied) == (None, None, False, 1)
    assert list(view.topics) == ["t"]


WRITES = """
from goqueue.replication.state import empty_state
from goqueue.replication.view import MetadataView
view = MetadataView(empty_state())
view.state["paused_all"] = True
view.topics["t"]["partition_state"][0]["leader"] = 2
view.topics["t"]["partition_state"][0]["isr"].append(1)
view.topics["t"]["config"]["cleanupPolicy"] = "compact"
del view.brokers[0]
view.groups["g"]["paused"] = False
view.users["alice"]["salt"] = b""
view.acls[0]["allow"] = True
"""


def test_strict_mypy_refuses_every_write_through_the_view(tmp_path: Path) -> None:
    """The view's guarantee is static: each write below, nested ones included, is a type error."""
    (tmp_path / "writes.py").write_text(WRITES)
    (tmp_path / "mypy.ini").write_text(f"[mypy]\nmypy_path = {Path(goqueue.__file__).parents[1]}\n")
    report, _errors, status = mypy_api.run(["--strict", "--config-file", str(tmp_path / "mypy.ini"),
                                            "--cache-dir", str(tmp_path / "cache"), str(tmp_path / "writes.py")])
    flagged = sorted({int(line.split(":")[1]) for line in report.splitlines() if ": error:" in line})
    assert status == 1
    assert flagged == list(range(5, 13)), report
