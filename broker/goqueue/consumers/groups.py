"""A consumer group as an explicit state machine: members, generations, assignment, pause, and its cursors.

Pure: no I/O; time comes in as `now_s`. The coordinator calls these methods, then persists what changed.

Ordered mode (Kafka's group protocol, with the assignment computed here, as in KIP-848)::

    Empty ──join──▶ Rebalancing ──every member joined the generation──▶ Stable
      ▲                 ▲                                                  │
      └─last member─────┴──── join (new member or new topics), leave, session timeout, partitions added

Each membership change starts a new *generation* and computes the whole assignment at once. A member learns of
it from its next heartbeat (`rejoin`), joins again to take its partitions, and from then on consumes and commits
with the new generation; a request carrying an older generation is fenced (`FencedGeneration`), so a member that
was presumed dead cannot overwrite offsets of partitions that moved on.

Shared mode has no generations: a member is a consumer id seen within the session timeout (for `group describe`
and for refusing offset resets under live consumers).

`Paused` is a flag on top of either mode (this group, or all groups): nothing is delivered, sessions continue.
`Dead` is a group being deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from goqueue import limits
from goqueue.config import Assignor, ConsumersSection
from goqueue.consumers.assignment import TP, assign
from goqueue.consumers.leases import Cursor
from goqueue.errors import FencedGeneration, InvalidRequest, Overloaded, UnknownMember
from goqueue.models import GroupConfig, GroupMode, GroupState


@dataclass
class Member:
    member_id: str
    client_id: str
    host: str
    topics: tuple[str, ...]
    last_seen_s: float
    generation: int = 0  # the generation this member last joined
    assignment: list[TP] = field(default_factory=list)


@dataclass(frozen=True)
class Effective:
    """A group's settings with broker defaults filled in."""

    visibility_timeout_s: float
    max_deliveries: int
    inflight_capacity: int
    session_timeout_s: float
    auto_offset_reset: str
    assignor: Assignor
    dead_letter_topic: str | None

    def dead_letter_for(self, topic: str, suffix: str) -> str:
        return self.dead_letter_topic or f"{topic}{suffix}"


@dataclass
class Group:
    name: str
    mode: GroupMode
    config: GroupConfig
    topics: set[str] = field(default_factory=set)
    paused: bool = False
    generation: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    cursors: dict[TP, Cursor] = field(default_factory=dict)
    positions: dict[str, dict[TP, int]] = field(default_factory=dict)  # ordered: member → read position
    dead: bool = False

    # -- settings and state ----------------------------------------------------------------------------------

    def effective(self, defaults: ConsumersSection) -> Effective:
        """The group's settings over the broker's. The broker's durations are held to the group ranges too (the
        config file does not bound them): a lease deadline or session expiry stays a sane integer of ms."""
        c = self.config
        return Effective(
            visibility_timeout_s=c.visibility_timeout_s if c.visibility_timeout_s is not None
            else limits.VISIBILITY_TIMEOUT_S.clamp(defaults.visibility_timeout_s),
            max_deliveries=c.max_deliveries or defaults.max_deliveries,
            inflight_capacity=c.inflight_capacity or defaults.inflight_capacity,
            session_timeout_s=c.session_timeout_s or limits.SESSION_TIMEOUT_S.clamp(defaults.session_timeout_s),
            auto_offset_reset=(c.auto_offset_reset or defaults.auto_offset_reset).value,
            assignor=c.assignor or defaults.assignor,
            dead_letter_topic=c.dead_letter_topic)

    def state(self, all_paused: bool = False) -> GroupState:
        if self.dead:
            return GroupState.DEAD
        if self.paused or all_paused:
            return GroupState.PAUSED
        if not self.members:
            return GroupState.EMPTY
        if self.mode is GroupMode.ORDERED and any(m.generation != self.generation for m in self.members.values()):
            return GroupState.REBALANCING
        return GroupState.STABLE

    def pending(self) -> int:
        return sum(c.pending for c in self.cursors.values())

    def leased(self) -> int:
        return sum(c.leased() for c in self.cursors.values())

    # -- ordered membership ----------------------------------------------------------------------------------

    def join(
        self,
        member_id: str | None,
        client_id: str,
        host: str,
        topics: tuple[str, ...],
        now_s: float,
        partitions: Mapping[str, int],
        new_member_id: Callable[[], str],
        max_members: int,
        assignor: Assignor,
    ) -> tuple[Member, bool]:
        """Join or rejoin; returns the member and whether a new generation started."""
        assert self.mode is GroupMode.ORDERED
        member = self.members.get(member_id) if member_id else None
        if member_id and member is None:
            raise UnknownMember(f"member {member_id!r} is not in group {self.name!r} (session expired?): join "
                                "without a memberId", group=self.name)
        if member is not None and member.topics == topics and member.generation == self.generation:
            member.last_seen_s = now_s  # a repeated join of the current generation changes nothing
            return member, False
        if member is not None and member.topics == topics:
            member.generation, member.last_seen_s = self.generation, now_s  # takes the assignment of this gen
            return member, False
        if member is None:
            if len(self.members) >= max_members:
                raise Overloaded(f"group {self.name!r} has consumers.maxMembers={max_members} members")
            member = Member(new_member_id(), client_id, host, topics, now_s)
            self.members[member.member_id] = member
        member.topics, member.last_seen_s, member.client_id, member.host = topics, now_s, client_id, host
        self.rebalance(partitions, assignor)
        member.generation = self.generation
        return member, True

    def rebalance(self, partitions: Mapping[str, int], assignor: Assignor) -> None:
        """Start a new generation and compute every member's partitions."""
        self.generation += 1
        subscriptions = {m.member_id: m.topics for m in self.members.values()}
        previous = {m.member_id: m.assignment for m in self.members.values()}
        assignment = assign(assignor, subscriptions, partitions, previous)
        for member in self.members.values():
            member.assignment = assignment.get(member.member_id, [])
            kept = set(member.assignment)
            self.positions[member.member_id] = {
                tp: pos for tp, pos in self.positions.get(member.member_id, {}).items() if tp in kept}
        for gone in set(self.positions) - set(self.members):
            del self.positions[gone]
        for member in self.members.values():
            self.topics.update(member.topics)

    def heartbeat(self, member_id: str, generation: int, now_s: float) -> Member:
        member = self.member(member_id)
        member.last_seen_s = now_s
        del generation  # an old generation is answered with rejoin=true, not an error
        return member

    def leave(self, member_id: str, partitions: Mapping[str, int], assignor: Assignor) -> None:
        self.member(member_id)
        del self.members[member_id]
        self.positions.pop(member_id, None)
        if self.mode is GroupMode.ORDERED:
            self.rebalance(partitions, assignor)

    def expire(self, now_s: float, session_timeout_s: float) -> list[Member]:
        """Remove members silent for longer than the session timeout (the caller rebalances ordered groups)."""
        gone = [m for m in self.members.values() if now_s - m.last_seen_s > session_timeout_s]
        for member in gone:
            del self.members[member.member_id]
            self.positions.pop(member.member_id, None)
        return gone

    def member(self, member_id: str) -> Member:
        try:
            return self.members[member_id]
        except KeyError:
            raise UnknownMember(f"member {member_id!r} is not in group {self.name!r} (it left or its session "
                                "expired): join again", group=self.name) from None

    def check_generation(self, member_id: str | None, generation: int | None) -> Member:
        """Fence requests from members of an older generation (or members that never joined it)."""
        if member_id is None or generation is None:
            raise InvalidRequest(f"group {self.name!r} is ordered: send memberId and generation from the join")
        member = self.member(member_id)
        if generation != self.generation or member.generation != self.generation:
            raise FencedGeneration(
                f"generation {generation} of group {self.name!r} is over (now {self.generation}): join again",
                group=self.name, generation=self.generation)
        return member

    def assignment_changed(self, partitions: Mapping[str, int]) -> bool:
        """True when a subscribed topic gained partitions (or vanished) since the last rebalance."""
        assigned = {tp for m in self.members.values() for tp in m.assignment}
        wanted = {(t, p) for m in self.members.values() for t in m.topics for p in range(partitions.get(t, 0))}
        return assigned != wanted

    # -- shared membership -----------------------------------------------------------------------------------

    def seen(self, consumer_id: str, host: str, topic: str, now_s: float, max_members: int) -> None:
        """Shared mode: a consumer id that consumed or acked recently is a member."""
        member = self.members.get(consumer_id)
        if member is None:
            if len(self.members) >= max_members:
                raise Overloaded(f"group {self.name!r} has consumers.maxMembers={max_members} consumers")
            member = self.members[consumer_id] = Member(consumer_id, consumer_id, host, (topic,), now_s)
        member.last_seen_s = now_s
        if topic not in member.topics:
            member.topics = (*member.topics, topic)
