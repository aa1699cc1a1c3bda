"""The metadata state machine: pure commands, placement, fencing, pre-restart checks."""

from __future__ import annotations

import copy

import pytest

from goqueue.replication import commands as cmds
from goqueue.replication.metadata import (
    MetadataConflict,
    apply_command,
    assign_replicas,
    choose_new_leader,
    empty_state,
    restart_would_break,
)
from goqueue.replication.state import BrokerEntry, MetadataState, PartitionState

pytestmark = pytest.mark.unit


def brokers(*zones: str | None) -> dict[int, BrokerEntry]:
    return {i: {"host": "h", "http_port": 1, "grpc_port": 2, "raft_address": f"h:{i}", "zone": zone}
            for i, zone in enumerate(zones)}


def topic_command(name: str, assignment: dict[int, list[int]], internal: bool = False) -> cmds.CreateTopic:
    return cmds.create_topic(name, replication_factor=len(assignment[0]), config={}, created_at_s=0.0,
                             assignment=assignment, internal=internal)


def test_assignment_spreads_leaders_and_replicas() -> None:
    assignment = assign_replicas(brokers(None, None, None), range(6), 3)
    assert [replicas[0] for replicas in assignment.values()] == [0, 1, 2, 0, 1, 2]
    assert all(len(set(r)) == 3 for r in assignment.values())


def test_assignment_is_zone_aware() -> None:
    # brokers 0,1 in zone a; 2,3 in zone b: consecutive replicas alternate zones
    layout = brokers("a", "a", "b", "b")
    for replicas in assign_replicas(layout, range(8), 2).values():
        assert {layout[b]["zone"] for b in replicas} == {"a", "b"}


def test_assignment_needs_enough_brokers() -> None:
    with pytest.raises(MetadataConflict, match="needs 3 brokers"):
        assign_replicas(brokers(None, None), range(1), 3)


def test_leader_election_is_compare_and_set_on_the_epoch() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    partition = apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1,
                                                       isr=[1, 2]))
    assert (partition["leader"], partition["leader_epoch"], partition["isr"]) == (1, 1, [1, 2])
    with pytest.raises(MetadataConflict, match="epoch 1, not 0"):
        apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=2, isr=[2]))
    assert state["topics"]["t"]["partition_state"][0]["leader"] == 1


def test_isr_change_is_fenced_by_epoch_and_version() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0, 1]))
    with pytest.raises(MetadataConflict):
        apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0]))
    with pytest.raises(MetadataConflict, match="leader must stay"):
        apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=1, isr=[1]))


def test_new_leader_comes_from_the_isr_unless_unclean() -> None:
    partition = {"replicas": [0, 1, 2], "isr": [0, 2]}
    assert choose_new_leader(partition, alive={1, 2}) == 2
    assert choose_new_leader(partition, alive={1}) is None
    assert choose_new_leader(partition, alive={1}, unclean=True) == 1


def test_pre_restart_check() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0, 1]))
    assert restart_would_break(state, 2, {"t": 2}, quorum_alive=3, quorum_size=3) == []
    reasons = restart_would_break(state, 1, {"t": 2}, quorum_alive=3, quorum_size=3)
    assert reasons == ["t/0: ISR [0, 1] would fall below min.insync.replicas 2"]
    assert "quorum" in restart_would_break(state, 2, {}, quorum_alive=2, quorum_size=3)[0]


def test_unknown_command_and_missing_topic_leave_state_unchanged() -> None:
    state = empty_state()
    with pytest.raises(MetadataConflict):
        apply_command(state, {"op": "explode"})
    with pytest.raises(MetadataConflict):
        apply_command(state, cmds.delete_topic("nope"))
    assert state == empty_state()


def test_grow_partitions_appends() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0]}))
    apply_command(state, cmds.grow_partitions("t", {1: [0], 2: [0]}))
    assert state["topics"]["t"]["partitions"] == 3
    with pytest.raises(MetadataConflict):
        apply_command(state, cmds.grow_partitions("t", {5: [0]}))


def test_a_broker_back_on_another_volume_leaves_every_isr() -> None:
    state = empty_state()
    for broker in range(3):
        apply_command(state, cmds.register_broker(broker, host="h", http_port=1, grpc_port=2, raft_address="r",
                                                  zone=None, directory_id=f"vol-{broker}", internal_port=3))
    apply_command(state, topic_command("t", {0: [0, 1, 2], 1: [1, 2, 0]}))
    apply_command(state, topic_command("solo", {0: [1]}))

    stranded = apply_command(state, cmds.replace_storage(1, "vol-1b"))

    led, followed = state["topics"]["t"]["partition_state"][1], state["topics"]["t"]["partition_state"][0]
    assert (led["leader"], led["leader_epoch"], led["isr"]) == (2, 1, [2, 0]), "leadership moved off the empty copy"
    assert (followed["leader"], followed["leader_epoch"], followed["isr"]) == (0, 0, [0, 2])
    assert stranded == ["solo/0"], "a sole replica cannot leave: it is reported instead"
    assert state["topics"]["solo"]["partition_state"][0]["isr"] == [1]
    assert state["brokers"][1]["directory_id"] == "vol-1b"


def three_replica_state() -> MetadataState:
    """Topic t, partition 0 on brokers 0, 1, 2 (0 leads, all in sync), as a controller created it."""
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    return state


def partition_zero(state: MetadataState) -> PartitionState:
    return state["topics"]["t"]["partition_state"][0]


def test_a_follower_that_lost_its_copy_leaves_the_isr_and_leadership_stays() -> None:
    state = three_replica_state()
    apply_command(state, cmds.leave_isr("t", 0, 1))
    assert partition_zero(state) == {"replicas": [0, 1, 2], "leader": 0, "leader_epoch": 0, "isr": [0, 2],
                                     "version": 1}


def test_a_leader_that_lost_its_copy_hands_leadership_to_an_in_sync_replica_first() -> None:
    state = three_replica_state()
    apply_command(state, cmds.leave_isr("t", 0, 0))
    assert partition_zero(state) == {"replicas": [0, 1, 2], "leader": 1, "leader_epoch": 1, "isr": [1, 2],
                                     "version": 1}, "a new epoch fences the old leader's writes"


def test_leaving_an_isr_it_is_not_in_changes_nothing() -> None:
    state = three_replica_state()
    apply_command(state, cmds.leave_isr("t", 0, 1))
    before = copy.deepcopy(partition_zero(state))
    apply_command(state, cmds.leave_isr("t", 0, 1))
    assert partition_zero(state) == before, "no version bump: a stale ISR change in flight still applies"


def test_the_only_in_sync_replica_cannot_leave() -> None:
    state = three_replica_state()
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0]))
    before = copy.deepcopy(partition_zero(state))
    with pytest.raises(MetadataConflict, match="only in-sync replica of t/0"):
        apply_command(state, cmds.leave_isr("t", 0, 0))
    assert partition_zero(state) == before


def test_reassignment_drops_leaving_replicas_from_the_isr_and_adds_new_ones_only_once_caught_up() -> None:
    state = three_replica_state()
    partition = apply_command(state, cmds.reassign("t", 0, replicas=[0, 2, 3], expected_version=0))
    assert partition == {"replicas": [0, 2, 3], "leader": 0, "leader_epoch": 0, "isr": [0, 2], "version": 1}


def test_reassignment_is_compare_and_set_on_the_version_and_keeps_the_leader() -> None:
    state = three_replica_state()
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0, 1]))
    before = copy.deepcopy(partition_zero(state))
    with pytest.raises(MetadataConflict, match=r"changed \(version 1\)"):
        apply_command(state, cmds.reassign("t", 0, replicas=[0, 3, 4], expected_version=0))
    with pytest.raises(MetadataConflict, match="move leadership off"):
        apply_command(state, cmds.reassign("t", 0, replicas=[1, 2, 3], expected_version=1))
    assert partition_zero(state) == before


def test_an_offline_partition_is_not_reassigned_away_from_its_last_in_sync_replica() -> None:
    """Broker 1 holds the only in-sync copy and is down; draining it must not name an empty new replica in sync,
    which the controller would then elect cleanly (and 2 and 0 would truncate to its empty log)."""
    state = three_replica_state()
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=None, isr=[1]))
    before = copy.deepcopy(partition_zero(state))
    with pytest.raises(MetadataConflict, match=r"every in-sync replica \[1\] would leave"):
        apply_command(state, cmds.reassign("t", 0, replicas=[3, 2, 0], expected_version=1))
    assert partition_zero(state) == before
    assert choose_new_leader(partition_zero(state), alive={0, 2, 3}) is None


def test_group_settings_change_only_what_the_command_names() -> None:
    state = empty_state()
    apply_command(state, cmds.set_group("g"))
    assert state["groups"]["g"] == {"coordinator": None, "paused": False}
    apply_command(state, cmds.set_group("g", coordinator=2))
    apply_command(state, cmds.set_group("g", paused=True))
    assert state["groups"]["g"] == {"coordinator": 2, "paused": True}
    apply_command(state, {"op": "set_paused_all", "paused": 1})  # as an older broker may have journaled it
    assert state["paused_all"] is True


def test_a_restore_replaces_topics_and_groups_with_copies_and_keeps_the_brokers() -> None:
    backup = three_replica_state()
    apply_command(backup, cmds.set_group("g", coordinator=1, paused=True))
    state = empty_state()
    apply_command(state, cmds.register_broker(7, host="h", http_port=1, grpc_port=2, raft_address="r", zone=None,
                                              directory_id="", internal_port=3))
    apply_command(state, topic_command("gone", {0: [7]}))
    command = cmds.restore(backup["topics"], backup["groups"])
    apply_command(state, command)
    assert (state["topics"], state["groups"]) == (backup["topics"], backup["groups"])
    assert list(state["brokers"]) == [7]
    partition_zero(state)["isr"].append(9)
    state["groups"]["g"]["paused"] = False
    assert partition_zero(backup)["isr"] == [0, 1, 2], "the journaled command must not share state"
    assert backup["groups"]["g"]["paused"] is True


def test_every_applied_command_is_counted() -> None:
    state = three_replica_state()
    apply_command(state, cmds.barrier(0))
    assert state["applied"] == 2


def test_each_election_starts_a_new_epoch_and_a_new_version() -> None:
    state = three_replica_state()
    for epoch, leader in enumerate([1, 2, None, 0]):
        isr = [0, 1, 2] if leader is not None else []
        partition = apply_command(state, cmds.elect_leader("t", 0, expected_epoch=epoch, expected_version=None,
                                                           leader=leader, isr=isr))
        assert (partition["leader"], partition["leader_epoch"], partition["version"]) == (leader, epoch + 1,
                                                                                          epoch + 1)


def test_a_broker_that_is_not_a_replica_cannot_be_elected() -> None:
    state = three_replica_state()
    with pytest.raises(MetadataConflict, match="broker 5 is not a replica of t/0"):
        apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=5, isr=[5]))
    assert partition_zero(state)["leader_epoch"] == 0


def test_a_reassignment_planned_before_an_election_is_refused_after_it() -> None:
    state = three_replica_state()
    planned_at = partition_zero(state)["version"]
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1, isr=[1, 2]))
    with pytest.raises(MetadataConflict):
        apply_command(state, cmds.reassign("t", 0, replicas=[1, 2, 3], expected_version=planned_at))


def test_each_isr_change_moves_the_version_so_a_stale_one_is_refused() -> None:
    state = three_replica_state()
    for version, isr in enumerate([[0, 1], [0], [0, 2]]):
        partition = apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=version, isr=isr))
        assert (partition["isr"], partition["version"]) == (isr, version + 1)
    with pytest.raises(MetadataConflict, match=r"changed \(epoch 0, version 3\)"):
        apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=1, isr=[0, 1, 2]))


def test_a_deleted_topic_is_gone_and_a_topic_config_change_applies() -> None:
    state = three_replica_state()
    apply_command(state, topic_command("keep", {0: [1]}))
    apply_command(state, cmds.set_topic_config("keep", {"retention.ms": 1}))
    apply_command(state, cmds.delete_topic("t"))
    assert list(state["topics"]) == ["keep"]
    assert state["topics"]["keep"]["config"] == {"retention.ms": 1}
    with pytest.raises(MetadataConflict, match="topic 't' does not exist"):
        apply_command(state, cmds.set_topic_config("t", {}))
    with pytest.raises(MetadataConflict, match="keep/3 does not exist"):
        apply_command(state, cmds.leave_isr("keep", 3, 1))


def test_restarting_a_broker_is_safe_while_every_partition_keeps_min_insync_replicas() -> None:
    state = three_replica_state()
    assert restart_would_break(state, 2, {"t": 2}, quorum_alive=3, quorum_size=3) == [], "3 in sync, 2 needed"
    assert restart_would_break(state, 2, {}, quorum_alive=3, quorum_size=3) == [], "the default needs 1"
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=0, isr=[0]))
    assert restart_would_break(state, 0, {}, quorum_alive=3, quorum_size=3) == [
        "t/0: ISR [0] would fall below min.insync.replicas 1"], "its only in-sync replica: the partition goes offline"


def test_restarting_a_broker_must_leave_a_metadata_majority() -> None:
    state = empty_state()
    assert restart_would_break(state, 0, {}, quorum_alive=4, quorum_size=5) == []
    assert restart_would_break(state, 0, {}, quorum_alive=3, quorum_size=5) == [
        "metadata quorum: 3/5 brokers up, restarting one loses quorum"]


def test_a_broker_back_on_another_volume_leaves_the_isr_of_every_partition_it_is_in() -> None:
    state = empty_state()
    apply_command(state, topic_command("a", {0: [2], 1: [0, 1], 2: [1, 0], 3: [0, 2]}))
    apply_command(state, cmds.elect_leader("a", 2, expected_epoch=0, expected_version=None, leader=1, isr=[1, 0]))
    apply_command(state, cmds.elect_leader("a", 2, expected_epoch=1, expected_version=None, leader=0, isr=[0, 1]))

    stranded = apply_command(state, cmds.replace_storage(0, "new"))

    partitions = state["topics"]["a"]["partition_state"]
    assert stranded == []
    assert partitions[0] == {"replicas": [2], "leader": 2, "leader_epoch": 0, "isr": [2], "version": 0}
    assert partitions[1] == {"replicas": [0, 1], "leader": 1, "leader_epoch": 1, "isr": [1], "version": 1}
    assert partitions[2] == {"replicas": [1, 0], "leader": 1, "leader_epoch": 3, "isr": [1], "version": 3}
    assert partitions[3] == {"replicas": [0, 2], "leader": 2, "leader_epoch": 1, "isr": [2], "version": 1}


def test_a_stranded_sole_replica_does_not_stop_the_others_leaving() -> None:
    state = empty_state()
    apply_command(state, topic_command("a", {0: [0], 1: [1, 0]}))
    stranded = apply_command(state, cmds.replace_storage(0, "new"))
    assert stranded == ["a/0"]
    assert state["topics"]["a"]["partition_state"][1]["isr"] == [1]


def test_leaving_the_isr_and_reassigning_advance_epoch_and_version_from_where_they_are() -> None:
    state = three_replica_state()
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1, isr=[0, 1, 2]))
    apply_command(state, cmds.leave_isr("t", 0, 1))
    assert (partition_zero(state)["leader"], partition_zero(state)["leader_epoch"],
            partition_zero(state)["version"]) == (0, 2, 2)
    apply_command(state, cmds.reassign("t", 0, replicas=[0, 2, 3], expected_version=2))
    assert partition_zero(state)["version"] == 3


def test_a_new_cluster_is_unpaused_and_has_applied_nothing() -> None:
    state = empty_state()
    assert (state["paused_all"], state["applied"]) == (False, 0)
    assert state["brokers"] == state["topics"] == state["groups"] == {}


def test_a_state_from_before_the_applied_counter_counts_from_zero() -> None:
    state = empty_state()
    del state["applied"]
    apply_command(state, cmds.barrier(0))
    assert state["applied"] == 1


def test_a_registered_broker_keeps_its_volume_identity() -> None:
    state = empty_state()
    broker = {"host": "h", "http_port": 1, "grpc_port": 2, "raft_address": "r", "zone": "a"}
    apply_command(state, cmds.register_broker(1, **broker, directory_id="vol-1", internal_port=3))
    apply_command(state, {"op": "register_broker", "id": 2, **broker})  # journaled before volumes had one
    assert state["brokers"][1] == {**broker, "directory_id": "vol-1", "internal_port": 3, "metadata_version": 2}
    assert state["brokers"][2] == broker


def test_a_registered_broker_keeps_its_internal_port_and_older_registrations_have_none() -> None:
    state = empty_state()
    broker = {"host": "h", "http_port": 1, "grpc_port": 2, "raft_address": "r", "zone": "a"}
    apply_command(state, cmds.register_broker(1, **broker, directory_id="vol-1", internal_port=8081))
    apply_command(state, {"op": "register_broker", "id": 2, **broker})  # journaled before the internal listener
    assert state["brokers"][1] == {**broker, "directory_id": "vol-1", "internal_port": 8081, "metadata_version": 2}
    assert "internal_port" not in state["brokers"][2]
    assert "metadata_version" not in state["brokers"][2]  # version 1


def test_a_created_topic_records_what_readers_need() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1]}))
    apply_command(state, topic_command("__consumer_state", {0: [1, 0]}, internal=True))
    topic = state["topics"]["t"]
    assert (topic["name"], topic["partitions"], topic["replication_factor"], topic["internal"]) == ("t", 1, 2, False)
    assert state["topics"]["__consumer_state"]["internal"] is True
    with pytest.raises(MetadataConflict, match="topic 't' already exists"):
        apply_command(state, topic_command("t", {0: [0]}))


def test_a_topic_journaled_without_the_internal_flag_is_a_user_topic() -> None:
    state = empty_state()
    command = dict(topic_command("t", {0: [0]}))
    del command["internal"]
    apply_command(state, command)  # type: ignore[arg-type]  # as a proposer that left the flag out journaled it
    assert state["topics"]["t"]["internal"] is False


def test_an_election_planned_before_an_isr_shrink_at_the_same_epoch_is_refused() -> None:
    """The controller plans an election from the ISR it saw; the leader then shrinks the ISR (same epoch, next
    version). Applied after, the election would put the removed replica back in the ISR — and could later elect it
    with records it never had. The version in the command refuses it; the controller plans again from the new
    state. (A version-1 command, epoch only, applies: what the previous release did.)"""
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    partition = state["topics"]["t"]["partition_state"][0]
    planned = cmds.elect_leader("t", 0, expected_epoch=partition["leader_epoch"],
                                expected_version=partition["version"], leader=1, isr=[0, 1, 2])
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=partition["leader_epoch"],
                                         expected_version=partition["version"], isr=[0, 1]))  # 2 fell behind
    with pytest.raises(MetadataConflict, match="changed since the election was planned"):
        apply_command(state, planned)
    assert state["topics"]["t"]["partition_state"][0]["isr"] == [0, 1]
    unversioned = {key: value for key, value in planned.items() if key != "expected_version"}
    apply_command(state, unversioned)  # type: ignore[arg-type]
    assert state["topics"]["t"]["partition_state"][0]["isr"] == [0, 1, 2]  # the hole the version closes
