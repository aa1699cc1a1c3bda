"""Replica reassignment (KIP-455) as metadata state: add first, remove last; the controller's steps; cancel; the
replication throttle's lifetime; and the pure proposals (goals in, moves out)."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from goqueue.replication import commands as cmds
from goqueue.replication.controller import drain_plan, plan_leadership, plan_reassignments, rebalance_plan
from goqueue.replication.metadata import MetadataConflict, apply_command, empty_state, writable_copy
from goqueue.replication.reassignment import Goals, PlanRefused, plan_moves, under_replicated, unmet_drains
from goqueue.replication.state import MetadataState, PartitionState

pytestmark = pytest.mark.unit


def cluster(brokers: int, zones: list[str | None] | None = None) -> MetadataState:
    state = empty_state()
    for b in range(brokers):
        apply_command(state, cmds.register_broker(b, host="h", http_port=1, grpc_port=2, raft_address=f"h:{b}",
                                                  zone=zones[b] if zones else None, directory_id=f"v{b}",
                                                  internal_port=3))
    return state


def with_topic(state: MetadataState, assignment: dict[int, list[int]], name: str = "t") -> MetadataState:
    apply_command(state, cmds.create_topic(name, replication_factor=len(assignment[0]), config={}, created_at_s=0.0,
                                           assignment=assignment))
    return state


def part(state: MetadataState, index: int = 0, name: str = "t") -> PartitionState:
    return state["topics"][name]["partition_state"][index]


def join_isr(state: MetadataState, broker: int, index: int = 0) -> None:
    """The leader's ISR upkeep adding a caught-up replica."""
    p = part(state, index)
    apply_command(state, cmds.change_isr("t", index, leader_epoch=p["leader_epoch"], expected_version=p["version"],
                                         isr=[*p["isr"], broker]))


def run_controller(state: MetadataState, alive: set[int]) -> list[str]:
    """One controller tick's reassignment steps, applied; returns their ops."""
    steps = plan_reassignments(state, alive)
    for step in steps:
        apply_command(state, step)
    return [s["op"] for s in steps]


def test_a_move_adds_the_new_replicas_first_and_keeps_the_isr() -> None:
    state = with_topic(cluster(3), {0: [0, 1]})
    moved = apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    assert moved == {"replicas": [0, 1, 2], "leader": 0, "leader_epoch": 0, "isr": [0, 1], "version": 1,
                     "target_replicas": [1, 2], "adding_replicas": [2], "removing_replicas": [0]}


def test_the_controller_waits_for_the_new_replicas_then_moves_leadership_then_completes() -> None:
    """RF 2, min.insync 2: the ISR never has fewer than two members on the way (it did with the one-shot
    reassign), and the leaving leader hands over before it goes."""
    state = with_topic(cluster(3), {0: [0, 1]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    assert run_controller(state, {0, 1, 2}) == []  # 2 is still copying
    join_isr(state, 2)
    assert run_controller(state, {0, 1, 2}) == ["elect_leader"]
    assert (part(state)["leader"], part(state)["isr"]) == (1, [0, 1, 2])
    assert run_controller(state, {0, 1, 2}) == ["complete_reassignment"]
    assert part(state) == {"replicas": [1, 2], "leader": 1, "leader_epoch": 1, "isr": [1, 2], "version": 4}
    assert run_controller(state, {0, 1, 2}) == []


def test_a_dead_target_replica_does_not_take_leadership() -> None:
    state = with_topic(cluster(4), {0: [0, 1]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[2, 3], expected_version=0))
    join_isr(state, 2)
    join_isr(state, 3)
    assert run_controller(state, {0, 1, 3}) == ["elect_leader"]
    assert part(state)["leader"] == 3


def test_completion_is_refused_before_every_target_replica_is_in_sync_or_while_a_leaving_replica_leads() -> None:
    state = with_topic(cluster(3), {0: [0, 1]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    before = copy.deepcopy(part(state))
    with pytest.raises(MetadataConflict, match=r"target replicas \[2\] are not in sync"):
        apply_command(state, cmds.complete_reassignment("t", 0, expected_version=1))
    join_isr(state, 2)
    with pytest.raises(MetadataConflict, match="move leadership to a target replica"):
        apply_command(state, cmds.complete_reassignment("t", 0, expected_version=2))
    with pytest.raises(MetadataConflict, match=r"changed \(version 2, not 1\)"):
        apply_command(state, cmds.complete_reassignment("t", 0, expected_version=1))
    assert part(state)["replicas"] == before["replicas"]


def test_begin_is_compare_and_set_and_refuses_bad_targets() -> None:
    state = with_topic(cluster(3), {0: [0, 1]})
    for target, version, message in (([1, 2], 5, r"changed \(version 0, not 5\)"),
                                     ([], 0, "distinct and not empty"), ([1, 1], 0, "distinct and not empty"),
                                     ([1, 7], 0, r"brokers \[7\] are not members"),
                                     ([0, 1], 0, "already has replicas")):
        with pytest.raises(MetadataConflict, match=message):
            apply_command(state, cmds.begin_reassignment("t", 0, target=target, expected_version=version))
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    with pytest.raises(MetadataConflict, match="already moving"):
        apply_command(state, cmds.begin_reassignment("t", 0, target=[2, 0], expected_version=1))


def test_cancel_goes_back_to_the_original_replicas_and_hands_leadership_back() -> None:
    state = with_topic(cluster(3), {0: [0, 1]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    join_isr(state, 2)
    run_controller(state, {0, 1, 2})  # 1 leads now
    # a failover to 2
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=1, expected_version=None, leader=2, isr=[0, 1, 2]))
    apply_command(state, cmds.cancel_reassignment("t", 0, expected_version=part(state)["version"]))
    assert part(state) == {"replicas": [0, 1], "leader": 0, "leader_epoch": 3, "isr": [0, 1], "version": 5}
    with pytest.raises(MetadataConflict, match="not being reassigned"):
        apply_command(state, cmds.cancel_reassignment("t", 0, expected_version=5))


def test_cancel_is_refused_when_no_original_replica_is_in_sync() -> None:
    state = with_topic(cluster(3), {0: [0]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1], expected_version=0))
    join_isr(state, 1)
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1, isr=[1]))
    with pytest.raises(MetadataConflict, match="let the reassignment complete"):
        apply_command(state, cmds.cancel_reassignment("t", 0, expected_version=3))


def test_while_a_partition_moves_its_preferred_leader_is_the_first_target_replica() -> None:
    """Otherwise the preferred-leader rule would hand leadership back to the leaving replica."""
    state = with_topic(cluster(3), {0: [0, 1]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=1, isr=[0, 1]))
    assert plan_leadership(state, {0, 1, 2}, {0: 0.0, 1: 0.0, 2: 0.0}, 100.0, 10.0) == []


def test_the_replication_factor_follows_once_every_partition_has_moved() -> None:
    state = with_topic(cluster(3), {0: [0], 1: [1]})
    for index, target in ((0, [0, 1]), (1, [1, 2])):
        apply_command(state, cmds.begin_reassignment("t", index, target=target, expected_version=0))
        join_isr(state, target[1], index)
    apply_command(state, cmds.complete_reassignment("t", 0, expected_version=2))
    assert state["topics"]["t"]["replication_factor"] == 1
    apply_command(state, cmds.complete_reassignment("t", 1, expected_version=2))
    assert state["topics"]["t"]["replication_factor"] == 2


def test_the_throttle_is_stored_for_every_broker_and_cleared_with_the_last_move() -> None:
    state = with_topic(cluster(3), {0: [0], 1: [1]})
    apply_command(state, cmds.set_replication_throttle(10 * 2**20))
    for index, target in ((0, [2]), (1, [2])):
        apply_command(state, cmds.begin_reassignment("t", index, target=target, expected_version=0))
        join_isr(state, 2, index)
    apply_command(state, cmds.elect_leader("t", 0, expected_epoch=0, expected_version=None, leader=2, isr=[0, 2]))
    apply_command(state, cmds.complete_reassignment("t", 0, expected_version=3))
    assert state["replication_throttle"] == 10 * 2**20  # partition 1 still moves
    apply_command(state, cmds.cancel_reassignment("t", 1, expected_version=2))
    assert "replication_throttle" not in state
    with pytest.raises(MetadataConflict, match="must be positive"):
        apply_command(state, cmds.set_replication_throttle(0))


def test_deleting_the_topic_of_the_last_move_clears_the_throttle() -> None:
    state = with_topic(cluster(3), {0: [0]})
    apply_command(state, cmds.set_replication_throttle(10 * 2**20))
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1], expected_version=0))
    apply_command(state, cmds.delete_topic("t"))
    assert "replication_throttle" not in state


# -- proposals -------------------------------------------------------------------------------------------------

def replica_counts(state: MetadataState, moves: Any = ()) -> Counter[int]:
    targets = {(m.topic, m.partition): m.target for m in moves}
    counts: Counter[int] = Counter()
    for name, topic in state["topics"].items():
        for index, p in topic["partition_state"].items():
            counts.update(targets.get((name, index), p["replicas"]))
    return counts


def test_adding_a_broker_spreads_replicas_onto_it_and_moves_nothing_else() -> None:
    state = with_topic(cluster(4), {i: [i % 3, (i + 1) % 3] for i in range(6)})
    moves = plan_moves(state, Goals(add=frozenset({3})))
    counts = replica_counts(state, moves)
    assert counts[3] == 3
    assert max(counts.values()) - min(counts.values()) <= 1
    assert all(m.adding == (3,) and len(m.removing) == 1 for m in moves)


def test_balance_evens_replicas_and_preferred_leaders() -> None:
    state = with_topic(cluster(4), {i: [0, 1] for i in range(8)})
    moves = plan_moves(state, Goals(balance=True))
    assert set(replica_counts(state, moves).values()) == {4}
    leaders = Counter(m.target[0] for m in moves)
    assert set(leaders.values()) == {2}, leaders
    assert plan_moves(with_topic(cluster(3), {i: [i % 3] for i in range(3)}), Goals(balance=True)) == []


def test_balance_spreads_each_partition_over_the_zones() -> None:
    state = with_topic(cluster(4, ["a", "a", "b", "b"]), {0: [0, 1], 1: [2, 3]})
    moves = plan_moves(state, Goals(balance=True))
    zones = {0: "a", 1: "a", 2: "b", 3: "b"}
    assert len(moves) == 2
    assert all({zones[b] for b in m.target} == {"a", "b"} for m in moves)


def test_drain_moves_every_replica_off_and_keeps_the_others_first() -> None:
    state = with_topic(cluster(4), {0: [0, 1], 1: [1, 2], 2: [2, 3]})
    moves = plan_moves(state, Goals(drain=frozenset({1})), alive={0, 1, 2, 3})
    assert {(m.partition, m.target) for m in moves} == {(0, (0, 3)), (1, (2, 0))}
    assert [c["target"] for c in drain_plan(state, 1, {0, 1, 2, 3})] == [[0, 3], [2, 0]]


def test_a_dead_broker_receives_nothing() -> None:
    state = with_topic(cluster(4), {0: [0, 1]})
    moves = plan_moves(state, Goals(drain=frozenset({1})), alive={0, 1, 2})
    assert [m.target for m in moves] == [(0, 2)]


def test_a_drain_no_live_broker_can_take_says_which_replicas_stay_and_why() -> None:
    """Broker 3 is down (or not yet connected to the planning broker): partition 0 has nowhere to go. The plan
    said nothing at all (no move, no reason): a reassignment test on 4 fresh brokers got an empty plan."""
    state = with_topic(cluster(4), {0: [0, 1, 2], 1: [0, 3]})
    goals = Goals(drain=frozenset({0}))
    moves = plan_moves(state, goals, alive={0, 1, 2})
    assert [(m.partition, m.target) for m in moves] == [(1, (3, 1))]
    (reason,) = unmet_drains(state, goals, moves, {0, 1, 2})
    assert reason.startswith("t/0: the replica on broker [0] stays")
    assert "live brokers [0, 1, 2]" in reason
    everyone = plan_moves(state, goals, alive={0, 1, 2, 3})
    assert unmet_drains(state, goals, everyone, {0, 1, 2, 3}) == []


def test_replication_factor_up_and_down() -> None:
    state = with_topic(cluster(3, ["a", "a", "b"]), {0: [0], 1: [1]})
    up = plan_moves(state, Goals(replication_factor={"t": 2}))
    assert [m.target for m in up] == [(0, 2), (1, 2)]  # a new zone first
    three = with_topic(cluster(3), {0: [0, 1, 2]}, "t")
    down = plan_moves(three, Goals(replication_factor={"t": 1}))
    assert [m.target for m in down] == [(0,)]  # the leader stays


def test_partitions_already_moving_keep_their_target() -> None:
    """Partition 0 counts for brokers 2 and 3 already: the cluster is balanced, nothing more to move."""
    state = with_topic(cluster(4), {0: [0, 1], 1: [0, 1]})
    assert len(rebalance_plan(state)) == 1  # one partition moves to 2 and 3
    apply_command(state, cmds.begin_reassignment("t", 0, target=[2, 3], expected_version=0))
    assert rebalance_plan(state) == []


def test_impossible_goals_are_refused_with_the_reason() -> None:
    state = with_topic(cluster(3), {0: [0]})
    for goals, message in ((Goals(replication_factor={"t": 4}), r"needs 1\.\.3 brokers"),
                           (Goals(replication_factor={"nope": 1}), "does not exist"),
                           (Goals(drain=frozenset({9})), r"brokers \[9\] are not members"),
                           (Goals(drain=frozenset({1}), add=frozenset({1})), "both drained and added")):
        with pytest.raises(PlanRefused, match=message):
            plan_moves(state, goals)


def test_a_replica_its_broker_leads_alone_is_drained_too() -> None:
    """Replication factor 1 on the departing broker: a new copy is made, takes leadership, then the old one goes
    (a drain used to skip it and ask to be called again forever)."""
    state = with_topic(cluster(3), {0: [1]})
    (begin,) = drain_plan(state, 1, {0, 1, 2})
    apply_command(state, begin)
    (new,) = part(state)["adding_replicas"]
    join_isr(state, new)
    assert run_controller(state, {0, 1, 2}) == ["elect_leader"]
    assert run_controller(state, {0, 1, 2}) == ["complete_reassignment"]
    assert (part(state)["replicas"], part(state)["leader"], part(state)["isr"]) == ([new], new, [new])


def test_a_new_replica_still_copying_does_not_make_a_partition_under_replicated() -> None:
    state = with_topic(cluster(3), {0: [0, 1]})
    apply_command(state, cmds.begin_reassignment("t", 0, target=[1, 2], expected_version=0))
    assert not under_replicated(part(state))  # 2 copies; 0 and 1 are in sync
    apply_command(state, cmds.change_isr("t", 0, leader_epoch=0, expected_version=1, isr=[0]))
    assert under_replicated(part(state))  # 1, an original replica, fell out


@pytest.mark.parametrize("step", ["begin", "complete", "cancel"])
def test_each_step_copies_only_its_partition_and_never_changes_the_published_snapshot(step: str) -> None:
    """`writable_copy` (the Raft apply's copy-on-write): a move of many partitions must not deep-copy the whole
    metadata per step; the completion's replication factor and the throttle it clears change the copy only."""
    state = with_topic(cluster(3), {p: [0] for p in range(20)})
    apply_command(state, cmds.set_replication_throttle(1024))
    command: cmds.Command = cmds.begin_reassignment("t", 7, target=[1, 2], expected_version=0)
    if step != "begin":
        apply_command(state, command)
        join_isr(state, 1, 7)
        join_isr(state, 2, 7)
        apply_command(state, cmds.elect_leader("t", 7, expected_epoch=0, expected_version=None, leader=1,
                                               isr=[0, 1, 2]))
        version = part(state, 7)["version"]
        for index in range(20):  # the others move to two replicas as well: the topic's factor follows with 7's
            if index != 7:
                apply_command(state, cmds.begin_reassignment("t", index, target=[0, 2], expected_version=0))
                join_isr(state, 2, index)
                apply_command(state, cmds.complete_reassignment("t", index, expected_version=2))
        command = (cmds.complete_reassignment("t", 7, expected_version=version) if step == "complete"
                   else cmds.cancel_reassignment("t", 7, expected_version=version))
    before = copy.deepcopy(state)
    updated = writable_copy(state, command)
    expected = copy.deepcopy(state)
    assert apply_command(updated, command) == apply_command(expected, command)
    assert updated == expected
    assert state == before
    new, old = updated["topics"]["t"]["partition_state"], state["topics"]["t"]["partition_state"]
    assert all(new[p] is old[p] for p in range(20) if p != 7)
    assert updated["brokers"] is state["brokers"]
    if step != "begin":
        assert "replication_throttle" not in updated  # the last move ended
        assert "replication_throttle" in state
    if step == "complete":
        assert (updated["topics"]["t"]["replication_factor"], state["topics"]["t"]["replication_factor"]) == (2, 1)
