"""Replica reassignment proposals, as pure planning over the metadata state: goals in, moves out.

Goals (any combination, applied in this order):
* `replication_factor`: a topic's partitions get more replicas (on the least loaded brokers, new zones first) or
  fewer (the most loaded ones go; the leader stays);
* `drain`: every replica on these brokers moves to the least loaded other broker (new zones first);
* `add`: replicas move from the most loaded brokers onto these (new, empty) brokers until they hold their share;
* `balance`: replicas even across brokers (counts differ by at most one), each partition over as many zones as
  it can, then preferred leaders even (a reorder: no data moves, the controller hands leadership over later).

Partitions already moving keep their target and count for it. A move names the replicas it starts from and the
version it saw, so executing a stale proposal is refused (compare-and-set) rather than undoing a newer change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from goqueue.replication import commands as cmds
from goqueue.replication.view import BrokerView, PartitionView, StateView

PartitionKey = tuple[str, int]


class PlanRefused(Exception):
    """A goal cannot be met (a replication factor above the broker count, an unknown topic or broker)."""


@dataclass(frozen=True)
class Goals:
    balance: bool = False
    drain: frozenset[int] = frozenset()
    add: frozenset[int] = frozenset()
    replication_factor: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    replicas: tuple[int, ...]  # now, preferred leader first
    target: tuple[int, ...]
    version: int  # the partition version the plan saw

    @property
    def adding(self) -> tuple[int, ...]:
        return tuple(b for b in self.target if b not in self.replicas)

    @property
    def removing(self) -> tuple[int, ...]:
        return tuple(b for b in self.replicas if b not in self.target)


def target_of(partition: PartitionView) -> list[int]:
    """Where a partition's replicas are going: its target while it moves, else its replicas."""
    return list(partition.get("target_replicas", partition["replicas"]))


def is_moving(partition: PartitionView) -> bool:
    return "target_replicas" in partition


def under_replicated(partition: PartitionView) -> bool:
    """A replica that should be in sync is not; new replicas a reassignment is still copying do not count (as in
    Kafka's KIP-352), so a move does not read as lost redundancy."""
    adding = partition.get("adding_replicas", ())
    return any(b not in partition["isr"] and b not in adding for b in partition["replicas"])


def plan_moves(state: StateView, goals: Goals, alive: Iterable[int] | None = None) -> list[Move]:
    """The moves that meet `goals`. New replicas go only to registered brokers that are not drained (and alive,
    when `alive` is given)."""
    _check_goals(state, goals)
    planner = _Planner(state, goals, None if alive is None else set(alive))
    for name, factor in sorted(goals.replication_factor.items()):
        planner.change_replication_factor(name, factor)
    if goals.drain:
        planner.drain(goals.drain)
    if goals.add:
        planner.spread_onto(goals.add)
    if goals.balance:
        planner.spread_zones()
        planner.spread_onto(planner.destinations)
        planner.spread_leaders()
    return planner.moves()


def unmet_drains(state: StateView, goals: Goals, moves: Iterable[Move], alive: Iterable[int] | None) -> list[str]:
    """Why a drained broker keeps a replica: the partitions whose replicas, after `moves`, still include it (every
    live broker outside them is drained or down, so none can take the copy). Partitions already moving keep their
    target and are not reported."""
    targets = {(m.topic, m.partition): m.target for m in moves}
    live = "every registered broker" if alive is None else f"live brokers {sorted(alive)}"
    reasons = []
    for name, topic in sorted(state["topics"].items()):
        for index, partition in sorted(topic["partition_state"].items(), key=lambda item: int(item[0])):
            after = targets.get((name, int(index)), partition["replicas"])
            kept = sorted(goals.drain.intersection(after))
            if kept and not is_moving(partition):
                reasons.append(f"{name}/{index}: the replica on broker {kept} stays: no other broker can take it "
                               f"(replicas {partition['replicas']}, {live}, drained {sorted(goals.drain)})")
    return reasons


def begin_commands(moves: Iterable[Move]) -> list[cmds.BeginReassignment]:
    return [cmds.begin_reassignment(m.topic, m.partition, target=m.target, expected_version=m.version)
            for m in moves]


def _check_goals(state: StateView, goals: Goals) -> None:
    brokers = state["brokers"]
    unknown = sorted(b for b in goals.drain | goals.add if b not in brokers)
    if unknown:
        raise PlanRefused(f"brokers {unknown} are not members of the cluster (members: {sorted(brokers)})")
    if goals.drain & goals.add:
        raise PlanRefused(f"brokers {sorted(goals.drain & goals.add)} cannot be both drained and added")
    for name, factor in goals.replication_factor.items():
        if name not in state["topics"]:
            raise PlanRefused(f"topic {name!r} does not exist")
        room = len(brokers) - len(goals.drain)
        if not 1 <= factor <= room:
            raise PlanRefused(f"replication factor {factor} for {name!r} needs 1..{room} brokers "
                              f"({len(brokers)} registered, {len(goals.drain)} being drained)")


class _Planner:
    """The proposed assignment, changed goal by goal; replica counts per broker follow every change."""

    def __init__(self, state: StateView, goals: Goals, alive: set[int] | None) -> None:
        self.state = state
        self.brokers: Mapping[int, BrokerView] = state["brokers"]
        self.destinations = frozenset(b for b in self.brokers if b not in goals.drain
                                      and (alive is None or b in alive))
        self.current: dict[PartitionKey, list[int]] = {}
        self.versions: dict[PartitionKey, int] = {}
        self.assignment: dict[PartitionKey, list[int]] = {}  # partitions free to move
        self.load: dict[int, int] = dict.fromkeys(self.brokers, 0)
        self.leaders: dict[int, int] = dict.fromkeys(self.brokers, 0)
        for name, topic in sorted(state["topics"].items()):
            for index, partition in sorted(topic["partition_state"].items()):
                replicas = target_of(partition)
                for broker in replicas:
                    self.load[broker] = self.load.get(broker, 0) + 1
                if replicas:
                    self.leaders[replicas[0]] = self.leaders.get(replicas[0], 0) + 1
                if not is_moving(partition):
                    key = (name, int(index))
                    self.current[key] = list(partition["replicas"])
                    self.versions[key] = partition["version"]
                    self.assignment[key] = list(replicas)

    # -- bookkeeping -----------------------------------------------------------------------------------------

    def _zone(self, broker: int) -> str:
        entry = self.brokers.get(broker)
        return str(entry.get("zone") or "") if entry is not None else ""

    def _zones(self, replicas: Iterable[int]) -> int:
        return len({self._zone(b) for b in replicas})

    def _set(self, key: PartitionKey, replicas: list[int]) -> None:
        old = self.assignment[key]
        for broker in old:
            self.load[broker] -= 1
        for broker in replicas:
            self.load[broker] = self.load.get(broker, 0) + 1
        if old and replicas and old[0] != replicas[0]:
            self.leaders[old[0]] -= 1
            self.leaders[replicas[0]] = self.leaders.get(replicas[0], 0) + 1
        self.assignment[key] = replicas

    def _best_destination(self, replicas: list[int], among: Iterable[int]) -> int | None:
        """The broker to add to `replicas`: a zone they lack first, then the fewest replicas, then the lowest id."""
        zones = {self._zone(b) for b in replicas}
        candidates = [b for b in among if b not in replicas]
        if not candidates:
            return None
        return min(candidates, key=lambda b: (self._zone(b) in zones, self.load.get(b, 0), b))

    # -- goals -----------------------------------------------------------------------------------------------

    def change_replication_factor(self, name: str, factor: int) -> None:
        for key in [k for k in self.assignment if k[0] == name]:
            replicas = list(self.assignment[key])
            while len(replicas) < factor:
                new = self._best_destination(replicas, self.destinations)
                if new is None:
                    break
                replicas.append(new)
            while len(replicas) > factor:
                # The leader stays; of the rest, a replica sharing a zone goes first, then the most loaded.
                def cost(b: int, replicas: list[int] = replicas) -> tuple[bool, int, int]:
                    shares = sum(self._zone(o) == self._zone(b) for o in replicas) > 1
                    return (shares, self.load.get(b, 0), b)
                replicas.remove(max(replicas[1:], key=cost))
            self._set(key, replicas)

    def drain(self, brokers: frozenset[int]) -> None:
        for key, replicas in sorted(self.assignment.items()):
            if not brokers.intersection(replicas):
                continue
            kept = [b for b in replicas if b not in brokers]
            while len(kept) < len(replicas):
                new = self._best_destination(kept, self.destinations)
                if new is None:
                    break
                kept.append(new)
            if len(kept) == len(replicas):  # else every destination already holds one: it stays, the caller says so
                self._set(key, kept)

    def spread_onto(self, receivers: frozenset[int]) -> None:
        """Move replicas from the most loaded brokers to the least loaded of `receivers` until the receivers hold
        at most one replica fewer than any other broker."""
        for _ in range(sum(self.load.values()) + 1):  # each move narrows the spread: this bounds the loop
            takers = [b for b in receivers if b in self.destinations]
            if not takers:
                return
            receiver = min(takers, key=lambda b: (self.load.get(b, 0), b))
            givers = sorted((b for b in self.load if self.load[b] - self.load.get(receiver, 0) > 1),
                            key=lambda b: (-self.load[b], b))
            if not any(self._move_one(giver, receiver) for giver in givers):
                return

    def _move_one(self, giver: int, receiver: int) -> bool:
        """Move one replica from `giver` to `receiver`: of a partition where it keeps the most zones."""
        options = [key for key, replicas in self.assignment.items() if giver in replicas and receiver not in replicas]
        if not options:
            return False

        def preference(key: PartitionKey) -> tuple[int, bool, PartitionKey]:
            replicas = self.assignment[key]
            after = [receiver if b == giver else b for b in replicas]
            return (-self._zones(after), replicas[0] == giver, key)  # leaders stay in place when they can

        key = min(options, key=preference)
        self._set(key, [receiver if b == giver else b for b in self.assignment[key]])
        return True

    def spread_zones(self) -> None:
        """A partition whose replicas share a zone while another zone has a destination moves one there."""
        zone_count = len({self._zone(b) for b in self.destinations})
        for key in sorted(self.assignment):
            replicas = self.assignment[key]
            while self._zones(replicas) < min(len(replicas), zone_count):
                duplicate = next(b for n, b in enumerate(replicas)
                                 if any(self._zone(o) == self._zone(b) for o in replicas[:n]))
                new = self._best_destination(replicas, self.destinations)
                if new is None or self._zone(new) in {self._zone(b) for b in replicas}:
                    break
                replicas = [new if b == duplicate else b for b in replicas]
                self._set(key, replicas)

    def spread_leaders(self) -> None:
        """Reorder replica lists so each broker is the preferred leader of an even share (no data moves)."""
        for key, replicas in sorted(self.assignment.items()):
            first = min(replicas, key=lambda b: (self.leaders.get(b, 0) - (b == replicas[0]), replicas.index(b)))
            if first != replicas[0]:
                self._set(key, [first, *[b for b in replicas if b != first]])

    def moves(self) -> list[Move]:
        return [Move(key[0], key[1], tuple(self.current[key]), tuple(target), self.versions[key])
                for key, target in sorted(self.assignment.items()) if target != self.current[key]]
