"""`GroupCoordinator`: the consumer groups this broker coordinates, composed of one-way parts around the group
state machines (`groups.py`, `leases.py`).

It holds in memory the groups this broker *coordinates* — those whose `__consumer_state` partition it leads
(`ownership.py`) — and is built from parts that each get only what they need, none of which knows this class:

    coordinator ─┬▶ loading       role changes load and drop state partitions     (host: StatePartitions)
                 ├▶ delivery      consume, ack, nack, release                     (host: ConsumerHost)
                 ├▶ readouts      list, describe, inflight, gauges                (host: ClusterView, StatePartitions)
                 ├▶ backup        this coordinator's part of a metadata backup    (host: TopicLookup, ClusterView)
                 ├▶ dead_letters  exhausted messages to their dead-letter topic   (host: TopicLookup, Records)
                 ├▶ cursors       where a group reads each partition              (host: TopicLookup, Records)
                 ├▶ persistence   every change durable before the answer          (state_store: fenced appends)
                 ├▶ state_store   the `__consumer_state` topic: write, replay     (host: TopicLookup, StatePartitions)
                 └▶ coordinated   the shared table: groups, owned partitions, ownership checks, wake-ups

This class adds the group administration (declare, delete, pause, resume, offset resets), ordered membership
(join, heartbeat, leave, commit) and one background task (`_tick_loop`, every `consumers.expiryInterval`) that
expires leases and sessions and moves exhausted messages to their dead-letter topic. Requests reach it through
`router.py`, which forwards those about groups coordinated elsewhere; every method here still checks ownership
itself (`CoordinatedGroups.check_owner`), so a request that raced a leadership change gets a retriable
NOT_COORDINATOR or NOT_READY, never another broker's groups' state. The pause-all flag is cluster metadata
(`ClusterView.paused_all`), read by every coordinator. Everything it needs of the broker goes through the
`ConsumerHost` port (`port.py`).

Runs on the event loop; all mutations of group state happen there, between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from goqueue.config import ConsumersSection
from goqueue.consumers.assignment import TP
from goqueue.consumers.backup import backup_metadata
from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.cursors import GroupCursors
from goqueue.consumers.dead_letters import DeadLetters
from goqueue.consumers.delivery import Delivery
from goqueue.consumers.groups import Effective, Group
from goqueue.consumers.leases import Cursor
from goqueue.consumers.loading import StateLoading
from goqueue.consumers.offsets import plan_reset
from goqueue.consumers.persistence import GroupWriter
from goqueue.consumers.port import ConsumerHost
from goqueue.consumers.readouts import Readouts
from goqueue.consumers.state_store import STATE_TOPIC, Changes, StateStore
from goqueue.errors import (
    GoQueueError,
    GroupHasMembers,
    GroupNotFound,
    InvalidConfig,
    InvalidRequest,
    NotCoordinator,
    PartitionNotFound,
)
from goqueue.metrics import ConsumerMetrics, register_state_collector
from goqueue.models import (
    CommitRequest,
    CommitResponse,
    GroupInfo,
    GroupMode,
    GroupSpec,
    GroupSummary,
    HeartbeatResponse,
    InflightList,
    JoinRequest,
    JoinResponse,
    MetadataBackup,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
    TopicPartition,
)

log = logging.getLogger(__name__)


class GroupCoordinator:
    def __init__(self, host: ConsumerHost, settings: ConsumersSection, metrics: ConsumerMetrics,
                 clock: Callable[[], float] = time.time,
                 new_member_id: Callable[[str], str] | None = None) -> None:
        self.host = host
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.new_member_id = new_member_id or (lambda client: f"{client}-{uuid.uuid4().hex[:12]}")
        self.store = StateStore(host, settings.state_partitions, settings.state_segment_bytes)
        self.table = CoordinatedGroups(host.broker_id, settings.max_groups, self.store.partition_for,
                                       lambda: host.partition_leaders(STATE_TOPIC))
        self.loading = StateLoading(host, self.table, clock)
        self.cursors = GroupCursors(host, settings)
        self.writer = GroupWriter(self.table, self.store, metrics)
        self.dead_letters = DeadLetters(host, self.table, self.writer, settings, metrics, clock)
        self.delivery = Delivery(host, self.table, self.cursors, self.writer, self.dead_letters, settings, metrics,
                                 clock)
        self.readouts = Readouts(host, self.table, self.cursors, settings)
        self._ticker: asyncio.Task[None] | None = None
        register_state_collector(host.metrics_registry, self.readouts.collect_gauges)

    @property
    def groups(self) -> dict[str, Group]:
        """The groups this broker coordinates now (those of the state partitions it leads and has loaded)."""
        return self.table.groups

    @property
    def ready(self) -> bool:
        """Started (the state partitions led at start loaded, or `consumers.loadTimeout` passed) and not stopping:
        what /readyz reports for consumer groups."""
        return self.table.ready

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the state topic if needed, load the state partitions this broker leads, start expiring leases.
        Call once the broker has started. Waits (up to `consumers.loadTimeout`) for the partitions led here now, so a
        single broker answers its groups as soon as it is ready; partitions it comes to lead later load then."""
        await self.store.ensure_topic()
        self.loading.start()
        if not await self.loading.wait_loaded(self.settings.load_timeout_s):
            log.warning("consumers.load_slow", extra={"timeout_s": self.settings.load_timeout_s})
        self.table.ready = True
        log.info("consumers.ready", extra={"groups": len(self.groups), "state_partitions": sorted(
            self.table.owned), "unacked": sum(g.pending() for g in self.groups.values())})
        self._ticker = asyncio.create_task(self._tick_loop(), name="consumer-expiry")

    async def stop(self) -> None:
        self.table.ready = False
        self.table.notify()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.loading.stop()

    def check_ready(self) -> None:
        self.table.check_ready()

    def check_owner(self, name: str) -> int:
        """See `CoordinatedGroups.check_owner`: the epoch this broker's writes for the group are fenced at."""
        return self.table.check_owner(name)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry_interval_s)
            try:
                await self.tick()
            except GoQueueError as exc:  # e.g. disk full while writing: try again next tick
                log.error("consumers.tick_failed", extra={"error": exc.message, "code": exc.code})
            except Exception:
                log.exception("consumers.tick_crashed")
                self.table.ready = False  # nobody may lease messages that can no longer expire
                raise

    async def tick(self) -> None:
        """Expire sessions and leases, rebalance, dead-letter exhausted messages (tests call it directly)."""
        now_s = self.clock()
        now_ms = int(now_s * 1000)
        woke = False
        for group in list(self.groups.values()):
            if not self.table.owns(group):
                continue  # its state partition moved away during this tick
            try:
                woke |= await self._tick_group(group, now_s, now_ms)
            except NotCoordinator:
                continue  # moved away mid-tick: its new coordinator expires it
            except GoQueueError as exc:  # e.g. a dead-letter topic's leader moving: the other groups still tick
                log.warning("consumers.tick_group_failed", extra={"group": group.name, "error": exc.message,
                                                                  "code": exc.code})
        if woke:
            self.table.notify()

    async def _tick_group(self, group: Group, now_s: float, now_ms: int) -> bool:
        woke = False
        eff = self._effective(group)
        changes = Changes()
        woke |= self._expire_members(group, eff, now_s, changes)
        exhausted: list[tuple[TP, list[int]]] = []
        topics = self.host.topics()
        for tp in list(group.cursors):
            cursor = group.cursors[tp]
            if tp[0] not in topics:  # the topic was deleted: so are its offsets
                changes.slots.update((tp, o) for o in cursor.slots)
                del group.cursors[tp]
                changes.cursors.add(tp)
                group.topics.discard(tp[0])
                changes.group = True
                continue
            expired = cursor.expire(now_ms)
            if expired:
                self.metrics.lease_expirations.labels(group.name, tp[0]).inc(len(expired))
                woke = True
            dead = cursor.exhausted(eff.max_deliveries)
            if dead:
                exhausted.append((tp, dead))
        await self.writer.persist(group, changes)
        for tp, offsets in exhausted:
            await self.dead_letters.dead_letter(group, tp, offsets)
        return woke

    def _expire_members(self, group: Group, eff: Effective, now_s: float, changes: Changes) -> bool:
        gone = group.expire(now_s, eff.session_timeout_s)
        for member in gone:
            self.metrics.session_expirations.labels(group.name).inc()
            log.info("group.member_expired", extra={"group": group.name, "member": member.member_id})
        if group.mode is not GroupMode.ORDERED:
            return bool(gone)
        partitions = self.cursors.partition_counts(group.topics)
        if gone or (group.members and group.assignment_changed(partitions)):
            group.rebalance(partitions, eff.assignor)
            self.metrics.rebalances.labels(group.name).inc()
            log.info("group.rebalance", extra={"group": group.name, "generation": group.generation,
                                               "members": len(group.members), "reason": "session timeout"
                                               if gone else "partitions changed"})
            changes.group = True
            return True
        return False

    # -- helpers ---------------------------------------------------------------------------------------------

    def _effective(self, group: Group) -> Effective:
        return group.effective(self.settings)

    def _live_members(self, group: Group) -> int:
        group.expire(self.clock(), self._effective(group).session_timeout_s)
        return len(group.members)

    # -- group administration --------------------------------------------------------------------------------

    async def declare(self, name: str, spec: GroupSpec) -> GroupInfo:
        """Create the group, or update its settings (the operator's declarative path)."""
        self.check_owner(name)
        for topic in spec.topics:
            self.cursors.check_topic(topic)
        changes = Changes(group=True)
        group = self.groups.get(name)
        if group is None:
            group = self.table.create(name, spec.mode, spec.config)
        elif group.mode is not spec.mode:
            raise InvalidConfig(f"group {name!r} is {group.mode.value}; a group's mode cannot change (delete it "
                                "and declare it again)")
        group.config = spec.config
        if spec.paused is not None:
            group.paused = spec.paused
        for topic in spec.topics:
            group.topics.add(topic)
            for partition in range(self.host.topic(topic).partitions):
                await self.cursors.cursor(group, (topic, partition), None, changes)
        await self.writer.persist(group, changes)
        self.table.notify()
        return await self.describe(name)

    async def delete(self, name: str, force: bool = False) -> None:
        group = self.table.group(name)
        members = self._live_members(group)
        if members and not force:
            raise GroupHasMembers(f"group {name!r} has {members} live members; stop them first or force",
                                  group=name, members=members)
        await self.writer.delete(group)
        self.table.notify()
        log.info("group.deleted", extra={"group": name})

    async def list_groups(self) -> list[GroupSummary]:
        """The groups this broker coordinates (`router.py` gathers them from every coordinator)."""
        return await self.readouts.list_groups()

    async def describe(self, name: str) -> GroupInfo:
        return await self.readouts.describe(name)

    def inflight(self, name: str | None, limit: int) -> InflightList:
        """Unacked messages of one group, or of every group this broker coordinates (`router.py` gathers)."""
        return self.readouts.inflight(name, limit)

    def backup(self) -> MetadataBackup:
        """Topics, and the groups this broker coordinates (`router.py` gathers every coordinator's part)."""
        return backup_metadata(self.host, self.table, self.clock())

    async def pause(self, name: str | None) -> PauseResponse:
        return await self._set_paused(name, True)

    async def resume(self, name: str | None) -> PauseResponse:
        return await self._set_paused(name, False)

    async def _set_paused(self, name: str | None, paused: bool) -> PauseResponse:
        self.check_ready()
        if name is not None:
            group = self.table.group(name)
            group.paused = paused
            await self.writer.persist(group, Changes(group=True))
            self.table.notify()
            log.info("group.paused" if paused else "group.resumed", extra={"group": name})
            return PauseResponse(paused=paused or self.host.paused_all, all=False, groups=[name])
        # Pause-all is one metadata flag for the whole cluster; proposing the value it has already is a no-op, so
        # the router may ask every coordinator to do this.
        if self.host.paused_all != paused:
            await self.host.set_paused_all(paused)
        if not paused:  # resume --all also lifts every per-group pause: "everything flows again"
            for group in list(self.groups.values()):
                if group.paused and self.table.owns(group):
                    group.paused = False
                    await self.writer.persist(group, Changes(group=True))
        self.table.notify()
        log.info("consumers.all_paused" if paused else "consumers.all_resumed", extra={"groups": len(self.groups)})
        return PauseResponse(paused=paused, all=True, groups=self.table.coordinated_names())

    # -- ordered membership ----------------------------------------------------------------------------------

    async def join(self, name: str, request: JoinRequest, peer_host: str) -> JoinResponse:
        changes = Changes()
        topics = tuple(sorted(set(request.topics)))
        for topic in topics:
            self.cursors.check_topic(topic)
        group = self.table.get_or_create(name, GroupMode.ORDERED, changes)
        if group.mode is not GroupMode.ORDERED:
            raise InvalidRequest(f"group {name!r} is shared: consume with a consumerId, without joining")
        eff = self._effective(group)
        member, rebalanced = group.join(
            request.member_id, request.client_id, request.host or peer_host, topics, self.clock(),
            self.cursors.partition_counts(set(group.topics) | set(topics) | {t for m in group.members.values()
                                                                   for t in m.topics}),
            lambda: self.new_member_id(request.client_id), self.settings.max_members, eff.assignor)
        if rebalanced:
            self.metrics.rebalances.labels(name).inc()
            log.info("group.rebalance", extra={"group": name, "generation": group.generation,
                                               "members": len(group.members), "reason": "join"})
        changes.group = True  # offsets start at the first consume, where startFrom (from-beginning) applies
        await self.writer.persist(group, changes)
        self.table.notify()
        return JoinResponse(member_id=member.member_id, generation=group.generation,
                            state=group.state(self.host.paused_all),
                            assignments=[TopicPartition(topic=t, partition=p) for t, p in member.assignment],
                            session_timeout_ms=int(eff.session_timeout_s * 1000),
                            paused=group.paused or self.host.paused_all)

    def heartbeat(self, name: str, member_id: str, generation: int) -> HeartbeatResponse:
        group = self.table.group(name)
        member = group.heartbeat(member_id, generation, self.clock())
        return HeartbeatResponse(
            generation=group.generation, state=group.state(self.host.paused_all),
            rejoin=generation != group.generation or member.generation != group.generation,
            paused=group.paused or self.host.paused_all,
            assignments=[TopicPartition(topic=t, partition=p) for t, p in member.assignment])

    async def leave(self, name: str, member_id: str) -> None:
        group = self.table.group(name)
        eff = self._effective(group)
        group.leave(member_id, self.cursors.partition_counts(group.topics), eff.assignor)
        if group.mode is GroupMode.ORDERED:
            self.metrics.rebalances.labels(name).inc()
            log.info("group.rebalance", extra={"group": name, "generation": group.generation,
                                               "members": len(group.members), "reason": "leave"})
        await self.writer.persist(group, Changes(group=True))
        self.table.notify()

    async def commit(self, name: str, request: CommitRequest) -> CommitResponse:
        """Ordered mode (or any group without members): record the next offset to read per partition."""
        self.check_owner(name)
        for o in request.offsets:  # validate everything first: a refused commit changes nothing, creates nothing
            self.cursors.check_topic(o.topic)
            bounds = await self.cursors.bounds((o.topic, o.partition))
            if o.offset > bounds.high_watermark:
                raise InvalidRequest(f"offset {o.offset} of {o.topic}/{o.partition} is past its high watermark "
                                     f"{bounds.high_watermark}")
        existing = self.groups.get(name)
        if existing is not None and existing.mode is not GroupMode.ORDERED:
            raise InvalidRequest(f"group {name!r} is shared: ack messages by lease id (reset-offset moves its floor)")
        if existing is not None and (existing.members or request.member_id is not None):
            member = existing.check_generation(request.member_id, request.generation)
            foreign = [o for o in request.offsets if (o.topic, o.partition) not in member.assignment]
            if foreign:
                o = foreign[0]
                raise InvalidRequest(f"{o.topic}/{o.partition} is not assigned to member {member.member_id!r} in "
                                     f"generation {existing.generation}", group=name)
            member.last_seen_s = self.clock()
        elif existing is None and request.member_id is not None:
            raise GroupNotFound(f"consumer group {name!r} does not exist", group=name)
        changes = Changes()
        group = self.table.get_or_create(name, GroupMode.ORDERED, changes)
        for o in request.offsets:
            tp = (o.topic, o.partition)
            (await self.cursors.cursor(group, tp, None, changes)).commit(o.offset)
            changes.cursors.add(tp)
        await self.writer.persist(group, changes)
        self.metrics.commits.labels(name).inc()
        return CommitResponse(committed=request.offsets)

    # -- offset resets ---------------------------------------------------------------------------------------

    async def reset_offsets(self, name: str, request: OffsetResetRequest) -> OffsetResetPlan:
        self.check_owner(name)
        count = self.cursors.check_topic(request.topic)
        if request.partition is not None and request.partition >= count:
            raise PartitionNotFound(f"topic {request.topic!r} has partitions 0..{count - 1}, not "
                                    f"{request.partition}", topic=request.topic, partition=request.partition)
        partitions = [request.partition] if request.partition is not None else list(range(count))
        bounds = {p: await self.cursors.bounds((request.topic, p), request.timestamp_ms) for p in partitions}
        self.check_owner(name)  # the lookups awaited: look at the group as it is now
        group = self.groups.get(name)
        if group is not None and not request.dry_run:
            members = self._live_members(group)
            if members and not request.force:
                raise GroupHasMembers(
                    f"group {name!r} has {members} live members; stop them, or use --force (they lose their "
                    "leases or are rebalanced)", group=name, members=members)
        committed = {p: group.cursors[(request.topic, p)].committed if group and (request.topic, p) in group.cursors
                     else None for p in partitions}
        plan = plan_reset(request, bounds, committed)
        if request.dry_run:
            return OffsetResetPlan(group=name, dry_run=True, applied=False, partitions=plan)
        changes = Changes()
        group = self.table.get_or_create(name, GroupMode.SHARED, changes)
        if request.partition is not None:  # the topic's other partitions start as they would without the reset
            await self.cursors.start_topic(group, request.topic, None, changes)
        for entry in plan:
            tp = (entry.topic, entry.partition)
            cursor = group.cursors.get(tp)
            if cursor is None:
                group.cursors[tp] = Cursor.starting_at(entry.target)
            else:
                changes.slots.update((tp, slot.offset) for slot in cursor.reset(entry.target))
            changes.cursors.add(tp)
        if request.topic not in group.topics:
            group.topics.add(request.topic)
            changes.group = True
        if group.mode is GroupMode.ORDERED and group.members:  # forced: members restart from the new offsets
            group.positions.clear()
            group.rebalance(self.cursors.partition_counts(group.topics), self._effective(group).assignor)
            self.metrics.rebalances.labels(name).inc()
            changes.group = True
        await self.writer.persist(group, changes)
        self.table.notify()
        log.info("group.offsets_reset", extra={"group": name, "topic": request.topic, "to": request.to.value,
                                               "partitions": len(plan)})
        return OffsetResetPlan(group=name, dry_run=False, applied=True, partitions=plan)
