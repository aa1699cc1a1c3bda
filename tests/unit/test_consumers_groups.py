"""Ordered-group membership as a state machine, and the assignors: generations, fencing, rebalances — no I/O."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goqueue.config import Assignor, ConsumersSection
from goqueue.consumers.assignment import assign_range, assign_sticky
from goqueue.consumers.groups import Group
from goqueue.errors import FencedGeneration, InvalidRequest, Overloaded, UnknownMember
from goqueue.models import GroupConfig, GroupMode, GroupState

pytestmark = pytest.mark.unit

PARTITIONS = {"orders": 4, "audit": 2}
SESSION_S = 30.0


def ordered_group() -> Group:
    return Group(name="g", mode=GroupMode.ORDERED, config=GroupConfig())


def join(group: Group, now_s: float = 0.0, member_id: str | None = None, topics: tuple[str, ...] = ("orders",),
         ids: itertools.count[int] | None = None) -> tuple[str, bool]:
    counter = ids or itertools.count()
    member, rebalanced = group.join(member_id, "client", "10.0.0.1", topics, now_s, PARTITIONS,
                                    lambda: f"m{next(counter)}", 100, Assignor.STICKY)
    return member.member_id, rebalanced


def test_states_from_empty_through_rebalancing_to_stable() -> None:
    group = ordered_group()
    assert group.state() is GroupState.EMPTY
    ids = itertools.count()
    first, rebalanced = join(group, ids=ids)
    assert rebalanced
    assert group.generation == 1
    assert group.state() is GroupState.STABLE
    second, _ = join(group, ids=ids)
    assert group.generation == 2
    assert group.state() is GroupState.REBALANCING  # the first member has not joined generation 2 yet
    _, rebalanced = join(group, member_id=first)
    assert not rebalanced
    assert group.state() is GroupState.STABLE
    assigned = sorted(tp for m in group.members.values() for tp in m.assignment)
    assert assigned == [("orders", p) for p in range(4)]
    assert {len(m.assignment) for m in group.members.values()} == {2}
    del second


def test_pause_and_dead_override_the_membership_state() -> None:
    group = ordered_group()
    join(group)
    group.paused = True
    assert group.state() is GroupState.PAUSED
    group.paused = False
    assert group.state(all_paused=True) is GroupState.PAUSED
    group.dead = True
    assert group.state() is GroupState.DEAD


def test_commit_from_a_fenced_generation_is_rejected() -> None:
    group = ordered_group()
    ids = itertools.count()
    first, _ = join(group, ids=ids)
    group.check_generation(first, 1)
    join(group, ids=ids)  # generation 2 starts
    with pytest.raises(FencedGeneration):
        group.check_generation(first, 1)
    with pytest.raises(FencedGeneration):  # the right number, but the member has not joined it
        group.check_generation(first, 2)
    join(group, member_id=first)
    assert group.check_generation(first, 2).member_id == first


def test_unknown_members_and_missing_generation() -> None:
    group = ordered_group()
    with pytest.raises(UnknownMember):
        group.check_generation("ghost", 0)
    with pytest.raises(InvalidRequest):
        group.check_generation(None, None)
    with pytest.raises(UnknownMember):
        join(group, member_id="ghost")


def test_member_that_stops_heartbeating_is_removed_and_its_partitions_move() -> None:
    group = ordered_group()
    ids = itertools.count()
    alive, _ = join(group, now_s=0.0, ids=ids)
    dead, _ = join(group, now_s=0.0, ids=ids)
    join(group, now_s=1.0, member_id=alive)
    group.heartbeat(alive, group.generation, now_s=25.0)
    assert group.expire(now_s=SESSION_S, session_timeout_s=SESSION_S) == []
    gone = group.expire(now_s=SESSION_S + 1, session_timeout_s=SESSION_S)
    assert [m.member_id for m in gone] == [dead]
    generation = group.generation
    group.rebalance(PARTITIONS, Assignor.STICKY)
    assert group.generation == generation + 1
    assert sorted(group.members[alive].assignment) == [("orders", p) for p in range(4)]


def test_leave_rebalances_and_keeps_partitions_sticky() -> None:
    group = ordered_group()
    ids = itertools.count()
    a, _ = join(group, ids=ids)
    b, _ = join(group, ids=ids)
    c, _ = join(group, ids=ids)
    before = {m: set(group.members[m].assignment) for m in (a, b)}
    group.leave(c, PARTITIONS, Assignor.STICKY)
    for m in (a, b):
        assert before[m] <= set(group.members[m].assignment)  # nobody lost a partition it had
    with pytest.raises(UnknownMember):
        group.leave(c, PARTITIONS, Assignor.STICKY)


def test_rejoin_with_new_topics_starts_a_generation() -> None:
    group = ordered_group()
    a, _ = join(group)
    _, rebalanced = join(group, member_id=a, topics=("audit", "orders"))
    assert rebalanced
    assert len(group.members[a].assignment) == 6


def test_member_bound() -> None:
    group = ordered_group()
    for n in range(2):
        group.join(None, "c", "h", ("orders",), 0.0, PARTITIONS, lambda n=n: f"m{n}", 2, Assignor.RANGE)
    with pytest.raises(Overloaded):
        group.join(None, "c", "h", ("orders",), 0.0, PARTITIONS, lambda: "m9", 2, Assignor.RANGE)


def test_assignment_changed_when_partitions_are_added() -> None:
    group = ordered_group()
    join(group)
    assert not group.assignment_changed(PARTITIONS)
    assert group.assignment_changed({"orders": 6})


def test_effective_settings_fill_broker_defaults() -> None:
    group = Group(name="g", mode=GroupMode.SHARED, config=GroupConfig(max_deliveries=2))
    eff = group.effective(ConsumersSection())
    assert eff.max_deliveries == 2
    assert eff.visibility_timeout_s == 30.0
    assert eff.dead_letter_for("orders", ".dlq") == "orders.dlq"


def test_range_assignor_gives_contiguous_ranges() -> None:
    result = assign_range({"b": ["t"], "a": ["t"]}, {"t": 5})
    assert result == {"a": [("t", 0), ("t", 1), ("t", 2)], "b": [("t", 3), ("t", 4)]}


@given(members=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True),
       partitions=st.integers(0, 40), removed=st.integers(0, 7))
def test_sticky_is_balanced_complete_and_moves_little(members: list[str], partitions: int, removed: int) -> None:
    subscriptions = {m: ["t"] for m in members}
    first = assign_sticky(subscriptions, {"t": partitions}, {})
    _check_balanced(first, partitions)
    survivors = members[:-1] if len(members) > 1 and removed % 2 else members
    second = assign_sticky({m: ["t"] for m in survivors}, {"t": partitions}, first)
    _check_balanced(second, partitions)
    for member in survivors:  # a survivor keeps what it had, up to the new quota
        kept = set(first[member]) & set(second[member])
        assert len(kept) >= min(len(first[member]), partitions // len(survivors))


def _check_balanced(assignment: dict[str, list[tuple[str, int]]], partitions: int) -> None:
    everything = sorted(tp for tps in assignment.values() for tp in tps)
    assert everything == [("t", p) for p in range(partitions)]
    sizes = [len(tps) for tps in assignment.values()]
    assert max(sizes) - min(sizes) <= 1
