"""Which broker coordinates which group: the ownership of `__consumer_state` partitions, as pure decisions.

Placement (Kafka's group coordinator): the state of group G lives in state partition `crc32c(G) % N`, and the
broker leading that partition is G's *coordinator*. Leadership comes from the cluster metadata, so the placement
follows every failover and leadership transfer without a protocol of its own.

Each state partition a broker leads goes through::

    (not owned) ──becomes leader at epoch e──▶ LOADING(e) ──replayed──▶ ACTIVE(e)
         ▲                                         │                       │
         └────────── stops leading (or a new epoch: drop, then load again) ┘

While LOADING the broker replays the partition from its own replica of the log (which holds every acknowledged
record: a leader is elected from the in-sync replicas) and answers the partition's groups with NOT_READY; only in
ACTIVE does it serve them. Writes are fenced by the leader epoch the groups were loaded at, so a deposed
coordinator can never append to its successor's partition.

Routing, for a request about group G arriving at broker B: B serves it when the metadata names B leader of G's
partition at the epoch B loaded; otherwise B forwards it to the leader — once: a forwarded request that lands on a
broker that does not coordinate G is answered NOT_COORDINATOR (retriable), never forwarded again.

Nothing here does I/O; `loading.py`, `coordinated.py` and `router.py` act on these decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import crc32c

from goqueue.consumers.port import Leadership


class LoadState(StrEnum):
    LOADING = "loading"  # replaying the partition: its groups answer NOT_READY
    ACTIVE = "active"    # loaded: this broker coordinates the partition's groups


@dataclass
class OwnedPartition:
    """A state partition this broker leads, at the leader epoch it was loaded for."""

    index: int
    leader_epoch: int
    state: LoadState = LoadState.LOADING


class Transition(StrEnum):
    KEEP = "keep"      # nothing to do
    LOAD = "load"      # became leader: replay the partition
    DROP = "drop"      # stopped leading: forget its groups
    RELOAD = "reload"  # still (or again) leader, but at a new epoch: drop, then replay


def next_transition(owned: OwnedPartition | None, is_leader: bool, leader_epoch: int) -> Transition:
    """What a role change of a state partition replica means for the groups it holds.

    A new epoch always reloads, even when this broker stays leader: records of the old epoch that were not yet
    replicated may have been truncated by the election, and only the log says what survived.
    """
    if not is_leader:
        return Transition.KEEP if owned is None else Transition.DROP
    if owned is None:
        return Transition.LOAD
    return Transition.KEEP if owned.leader_epoch == leader_epoch else Transition.RELOAD


def state_partition_for(group: str, partitions: int) -> int:
    """The state partition of a group: CRC32C of its name (stable across brokers and versions) modulo N."""
    assert partitions > 0, "the state topic has at least one partition"
    return int(crc32c.crc32c(group.encode())) % partitions


class RouteKind(StrEnum):
    LOCAL = "local"                    # serve here
    LOADING = "loading"                # this broker is becoming the coordinator: NOT_READY, retry
    REMOTE = "remote"                  # forward to `broker_id`
    NO_COORDINATOR = "no_coordinator"  # nobody right now (no leader, or a forwarded request missed): retry


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    broker_id: int | None = None
    reason: str = ""


def route_group(self_id: int, leadership: Leadership | None, owned: OwnedPartition | None,
                forwarded: bool) -> Route:
    """Where a request about a group in this state partition is served (see the module docstring); `forwarded`:
    another broker sent the request on."""
    if leadership is None or leadership.leader is None:
        return Route(RouteKind.NO_COORDINATOR, reason="its state partition has no leader right now")
    leader = leadership.leader
    if leader == self_id:
        if owned is not None and owned.state is LoadState.ACTIVE and owned.leader_epoch == leadership.leader_epoch:
            return Route(RouteKind.LOCAL, self_id)
        return Route(RouteKind.LOADING, self_id, "this broker is loading the group's state")
    if forwarded:
        return Route(RouteKind.NO_COORDINATOR, int(leader),
                     f"forwarded here, but broker {leader} coordinates it (metadata moved meanwhile)")
    return Route(RouteKind.REMOTE, int(leader))


def coordinator_brokers(partitions: Iterable[Leadership]) -> tuple[set[int], int]:
    """The brokers leading state partitions (whom a cluster-wide read-out asks), and how many have no leader."""
    leaders: set[int] = set()
    leaderless = 0
    for leadership in partitions:
        if leadership.leader is None:
            leaderless += 1
        else:
            leaders.add(leadership.leader)
    return leaders, leaderless
