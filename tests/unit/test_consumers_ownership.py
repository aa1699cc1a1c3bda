"""Group coordinator placement and state-partition ownership (`consumers/ownership.py`): pure decisions, no I/O."""

from __future__ import annotations

import pytest

from goqueue.consumers.ownership import (
    LoadState,
    OwnedPartition,
    Route,
    RouteKind,
    Transition,
    coordinator_brokers,
    next_transition,
    route_group,
    state_partition_for,
)
from goqueue.consumers.port import Leadership

pytestmark = pytest.mark.unit

SELF = 1


def test_placement_is_crc32c_of_the_name_and_stable() -> None:
    # Fixed values: a change of the hash would move every group to another partition (and coordinator).
    assert [state_partition_for(g, 50) for g in ("orders", "billing", "work")] == [46, 6, 11]
    assert state_partition_for("orders", 1) == 0
    spread = {state_partition_for(f"group-{n}", 8) for n in range(200)}
    assert spread == set(range(8)), "200 names reach every one of 8 partitions"
    assert state_partition_for("a", 3) == int.from_bytes(bytes.fromhex("c1d04330"), "big") % 3  # crc32c("a")


@pytest.mark.parametrize(("owned", "is_leader", "epoch", "expected"), [
    (None, False, 0, Transition.KEEP),                                   # a follower stays out of it
    (None, True, 3, Transition.LOAD),                                    # became leader: replay
    (OwnedPartition(0, 3), True, 3, Transition.KEEP),                    # the same leadership, nothing new
    (OwnedPartition(0, 3, LoadState.ACTIVE), True, 4, Transition.RELOAD),  # re-elected: the log may differ
    (OwnedPartition(0, 3, LoadState.ACTIVE), False, 4, Transition.DROP),  # leadership moved away
    (OwnedPartition(0, 3), False, 3, Transition.DROP),                   # lost while still loading
])
def test_next_transition(owned: OwnedPartition | None, is_leader: bool, epoch: int, expected: Transition) -> None:
    assert next_transition(owned, is_leader, epoch) is expected


def partition(leader: int | None, epoch: int = 5) -> Leadership:
    return Leadership(leader, epoch)


def active(epoch: int = 5) -> OwnedPartition:
    return OwnedPartition(0, epoch, LoadState.ACTIVE)


@pytest.mark.parametrize(("state", "owned", "forwarded", "kind", "broker"), [
    (partition(SELF), active(), False, RouteKind.LOCAL, SELF),
    (partition(SELF), active(), True, RouteKind.LOCAL, SELF),          # forwarded here, served here
    (partition(SELF), OwnedPartition(0, 5), False, RouteKind.LOADING, SELF),
    (partition(SELF), None, False, RouteKind.LOADING, SELF),           # metadata ahead of the local role change
    (partition(SELF, epoch=6), active(5), False, RouteKind.LOADING, SELF),  # a new epoch: reload pending
    (partition(2), None, False, RouteKind.REMOTE, 2),
    (partition(2), active(), False, RouteKind.REMOTE, 2),              # loaded here, but metadata moved on
    (partition(2), None, True, RouteKind.NO_COORDINATOR, 2),           # never forwarded twice
    (partition(None), None, False, RouteKind.NO_COORDINATOR, None),
    (None, None, False, RouteKind.NO_COORDINATOR, None),
])
def test_route_group(state: Leadership | None, owned: OwnedPartition | None, forwarded: bool,
                     kind: RouteKind, broker: int | None) -> None:
    route = route_group(SELF, state, owned, forwarded)
    assert (route.kind, route.broker_id) == (kind, broker)
    if kind in (RouteKind.LOADING, RouteKind.NO_COORDINATOR):
        assert route.reason, "a refusal says why"


def test_route_is_a_value() -> None:
    assert route_group(SELF, partition(0), None, False) == Route(RouteKind.REMOTE, 0)


def test_coordinator_brokers() -> None:
    assert coordinator_brokers([partition(0), partition(2), partition(0)]) == ({0, 2}, 0)
    assert coordinator_brokers([partition(1), partition(None)]) == ({1}, 1)
    assert coordinator_brokers([]) == (set(), 0)
