"""The metadata state machine: pure commands, placement, fencing, pre-restart checks."""

from __future__ import annotations

from typing import Any

import pytest

from goqueue.replication.metadata import (
    MetadataConflict,
    apply_command,
    assign_replicas,
    choose_new_leader,
    empty_state,
    restart_would_break,
)

pytestmark = pytest.mark.unit


def brokers(*zones: str | None) -> dict[int, dict[str, Any]]:
    return {i: {"zone": zone} for i, zone in enumerate(zones)}


def topic_command(name: str, assignment: dict[int, list[int]]) -> dict[str, Any]:
    return {"op": "create_topic", "name": name, "replication_factor": len(assignment[0]), "config": {},
            "created_at_s": 0.0, "assignment": assignment}


def test_assignment_spreads_leaders_and_replicas() -> None:
    assignment = assign_replicas(brokers(None, None, None), range(6), 3)
    assert [replicas[0] for replicas in assignment.values()] == [0, 1, 2, 0, 1, 2]
    assert all(len(set(r)) == 3 for r in assignment.values())


def test_assignment_is_zone_aware() -> None:
    # brokers 0,1 in zone a; 2,3 in zone b: consecutive replicas alternate zones
    layout = {0: {"zone": "a"}, 1: {"zone": "a"}, 2: {"zone": "b"}, 3: {"zone": "b"}}
    for replicas in assign_replicas(layout, range(8), 2).values():
        assert {layout[b]["zone"] for b in replicas} == {"a", "b"}


def test_assignment_needs_enough_brokers() -> None:
    with pytest.raises(MetadataConflict, match="needs 3 brokers"):
        assign_replicas(brokers(None, None), range(1), 3)


def test_leader_election_is_compare_and_set_on_the_epoch() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    partition = apply_command(state, {"op": "elect_leader", "topic": "t", "partition": 0, "expected_epoch": 0,
                                      "leader": 1, "isr": [1, 2]})
    assert (partition["leader"], partition["leader_epoch"], partition["isr"]) == (1, 1, [1, 2])
    with pytest.raises(MetadataConflict, match="epoch 1, not 0"):
        apply_command(state, {"op": "elect_leader", "topic": "t", "partition": 0, "expected_epoch": 0,
                              "leader": 2, "isr": [2]})
    assert state["topics"]["t"]["partition_state"][0]["leader"] == 1


def test_isr_change_is_fenced_by_epoch_and_version() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    apply_command(state, {"op": "change_isr", "topic": "t", "partition": 0, "leader_epoch": 0,
                          "expected_version": 0, "isr": [0, 1]})
    with pytest.raises(MetadataConflict):
        apply_command(state, {"op": "change_isr", "topic": "t", "partition": 0, "leader_epoch": 0,
                              "expected_version": 0, "isr": [0]})
    with pytest.raises(MetadataConflict, match="leader must stay"):
        apply_command(state, {"op": "change_isr", "topic": "t", "partition": 0, "leader_epoch": 0,
                              "expected_version": 1, "isr": [1]})


def test_new_leader_comes_from_the_isr_unless_unclean() -> None:
    partition = {"replicas": [0, 1, 2], "isr": [0, 2]}
    assert choose_new_leader(partition, alive={1, 2}) == 2
    assert choose_new_leader(partition, alive={1}) is None
    assert choose_new_leader(partition, alive={1}, unclean=True) == 1


def test_pre_restart_check() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0, 1, 2]}))
    apply_command(state, {"op": "change_isr", "topic": "t", "partition": 0, "leader_epoch": 0,
                          "expected_version": 0, "isr": [0, 1]})
    assert restart_would_break(state, 2, {"t": 2}, quorum_alive=3, quorum_size=3) == []
    reasons = restart_would_break(state, 1, {"t": 2}, quorum_alive=3, quorum_size=3)
    assert reasons == ["t/0: ISR [0, 1] would fall below min.insync.replicas 2"]
    assert "quorum" in restart_would_break(state, 2, {}, quorum_alive=2, quorum_size=3)[0]


def test_unknown_command_and_missing_topic_leave_state_unchanged() -> None:
    state = empty_state()
    with pytest.raises(MetadataConflict):
        apply_command(state, {"op": "explode"})
    with pytest.raises(MetadataConflict):
        apply_command(state, {"op": "delete_topic", "name": "nope"})
    assert state == empty_state()


def test_grow_partitions_appends() -> None:
    state = empty_state()
    apply_command(state, topic_command("t", {0: [0]}))
    apply_command(state, {"op": "grow_partitions", "name": "t", "assignment": {1: [0], 2: [0]}})
    assert state["topics"]["t"]["partitions"] == 3
    with pytest.raises(MetadataConflict):
        apply_command(state, {"op": "grow_partitions", "name": "t", "assignment": {5: [0]}})


def test_a_broker_back_on_another_volume_leaves_every_isr() -> None:
    state = empty_state()
    for broker in range(3):
        apply_command(state, {"op": "register_broker", "id": broker, "host": "h", "http_port": 1, "grpc_port": 2,
                              "raft_address": "r", "zone": None, "directory_id": f"vol-{broker}"})
    apply_command(state, topic_command("t", {0: [0, 1, 2], 1: [1, 2, 0]}))
    apply_command(state, topic_command("solo", {0: [1]}))

    stranded = apply_command(state, {"op": "replace_storage", "broker": 1, "directory_id": "vol-1b"})

    led, followed = state["topics"]["t"]["partition_state"][1], state["topics"]["t"]["partition_state"][0]
    assert (led["leader"], led["leader_epoch"], led["isr"]) == (2, 1, [2, 0]), "leadership moved off the empty copy"
    assert (followed["leader"], followed["leader_epoch"], followed["isr"]) == (0, 0, [0, 2])
    assert stranded == ["solo/0"], "a sole replica cannot leave: it is reported instead"
    assert state["topics"]["solo"]["partition_state"][0]["isr"] == [1]
    assert state["brokers"][1]["directory_id"] == "vol-1b"
