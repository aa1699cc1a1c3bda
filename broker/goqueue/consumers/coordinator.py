"""`GroupCoordinator`: the I/O shell around the group state machines (`groups.py`, `leases.py`).

It holds in memory the groups this broker *coordinates* — those whose `__consumer_state` partition it leads
(`ownership.py`; loaded and dropped with that leadership by `loading.py`) — persists each change to that partition
before answering (`state_store.py`), and runs one background task (`_tick_loop`, every `consumers.expiryInterval`)
that expires leases and sessions and moves exhausted messages to their dead-letter topic. Deliveries (consume,
ack, nack, release, dead letters) live in `delivery.py`. Requests reach it through `router.py`, which forwards
those about groups coordinated elsewhere; every method here still checks ownership itself (`check_owner`), so a
request that raced a leadership change gets a retriable NOT_COORDINATOR or NOT_READY, never another broker's
groups' state. The pause-all flag is cluster metadata (`paused_all`), read by every coordinator.

Persistence is by *touched keys*: an operation records which group / cursor / lease it changed, and at write time
the current in-memory value of each key is written (a missing cursor or lease becomes a tombstone). Writes are
submitted in the order they are made, so the newest record of every key is the newest state, whatever order
concurrent requests interleave in.

Runs on the event loop; all mutations of group state happen there, between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from goqueue.broker import Broker
from goqueue.config import ConsumersSection, OffsetReset
from goqueue.consumers import reader, readouts, state_store
from goqueue.consumers.assignment import TP
from goqueue.consumers.delivery import Delivery
from goqueue.consumers.groups import Effective, Group
from goqueue.consumers.leases import Cursor
from goqueue.consumers.loading import StateLoading
from goqueue.consumers.offsets import PartitionBounds, plan_reset, start_offset
from goqueue.consumers.state_store import STATE_TOPIC, Changes, StateStore, is_internal
from goqueue.errors import (
    GoQueueError,
    GroupHasMembers,
    GroupNotFound,
    InvalidConfig,
    InvalidRequest,
    NotCoordinator,
    NotReady,
    Overloaded,
    PartitionNotFound,
)
from goqueue.metrics import ConsumerMetrics, register_state_collector
from goqueue.models import (
    GROUP_NAME_PATTERN,
    CommitRequest,
    CommitResponse,
    GroupConfig,
    GroupInfo,
    GroupMode,
    GroupSpec,
    GroupSummary,
    HeartbeatResponse,
    InflightList,
    JoinRequest,
    JoinResponse,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
    TopicPartition,
)
from goqueue.replication import commands

log = logging.getLogger(__name__)

_GROUP_NAME = re.compile(GROUP_NAME_PATTERN)


class GroupCoordinator:
    def __init__(self, broker: Broker, settings: ConsumersSection, metrics: ConsumerMetrics,
                 clock: Callable[[], float] = time.time,
                 new_member_id: Callable[[str], str] | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.new_member_id = new_member_id or (lambda client: f"{client}-{uuid.uuid4().hex[:12]}")
        self.store = StateStore(broker, settings.state_partitions, settings.state_segment_bytes)
        self.groups: dict[str, Group] = {}  # the groups of the state partitions this broker coordinates now
        self.loading = StateLoading(self)
        self.ready = False
        self.delivery = Delivery(self)
        self._changed = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        register_state_collector(broker.metrics.registry, lambda: readouts.collect_gauges(self))

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the state topic if needed, load the state partitions this broker leads, start expiring leases.
        Call after `Broker.start`. Waits (up to `consumers.loadTimeout`) for the partitions led here now, so a
        single broker answers its groups as soon as it is ready; partitions it comes to lead later load then."""
        await self.store.ensure_topic()
        self.loading.start()
        if not await self.loading.wait_loaded(self.settings.load_timeout_s):
            log.warning("consumers.load_slow", extra={"timeout_s": self.settings.load_timeout_s})
        self.ready = True
        log.info("consumers.ready", extra={"groups": len(self.groups), "state_partitions": sorted(
            self.loading.owned), "unacked": sum(g.pending() for g in self.groups.values())})
        self._ticker = asyncio.create_task(self._tick_loop(), name="consumer-expiry")

    async def stop(self) -> None:
        self.ready = False
        self.notify()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.loading.stop()

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady("consumer groups are loading their state, or the broker is shutting down")

    # -- ownership (see ownership.py and loading.py) ---------------------------------------------------------

    @property
    def all_paused(self) -> bool:
        """Pause-all is cluster metadata, so every coordinator sees the same flag."""
        return bool(self.broker.membership.state.get("paused_all", False))

    def check_owner(self, name: str) -> int:
        """The leader epoch of the group's state partition when this broker coordinates it; else NOT_COORDINATOR
        (retriable: it is coordinated elsewhere) or NOT_READY (this broker is loading it)."""
        self.check_ready()
        return self.loading.check_owner(self.store.partition_for(name)).leader_epoch

    def owns(self, group: Group) -> bool:
        """`group` is still the live object of a group this broker coordinates (not dropped, not replaced)."""
        return self.groups.get(group.name) is group

    def install_groups(self, groups: Mapping[str, Group]) -> None:
        """A state partition finished loading: its groups are served from now on."""
        self.groups.update(groups)
        self.notify()

    def drop_groups(self, index: int) -> int:
        """This broker stopped leading a state partition: forget its groups (waiting long-polls wake and answer
        NOT_COORDINATOR); returns how many were dropped."""
        names = [name for name in self.groups if self.store.partition_for(name) == index]
        for name in names:
            del self.groups[name]
        self.notify()
        return len(names)

    def coordinated_names(self) -> list[str]:
        """Names of the groups this broker coordinates, for a cluster-wide read-out; NOT_READY while a state
        partition it leads (in the metadata) is not loaded yet, so a read-out never silently misses groups."""
        self.check_ready()
        state_topic = self.broker.membership.view.topic(STATE_TOPIC)
        state_partitions = state_topic["partition_state"] if state_topic else {}
        led: set[int] = set()
        for index, partition in state_partitions.items():
            if partition["leader"] == self.broker.broker_id:
                owned = self.loading.check_owner(int(index))
                if owned.leader_epoch != partition["leader_epoch"]:
                    raise NotReady(f"{STATE_TOPIC}/{index} is changing leader epoch here; retry")
                led.add(int(index))
        # Groups of a partition whose leadership just moved away (not dropped yet) belong to the new leader's part.
        return sorted(name for name in self.groups if self.store.partition_for(name) in led)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry_interval_s)
            try:
                await self.tick()
            except GoQueueError as exc:  # e.g. disk full while writing: try again next tick
                log.error("consumers.tick_failed", extra={"error": exc.message, "code": exc.code})
            except Exception:
                log.exception("consumers.tick_crashed")
                self.ready = False  # nobody may lease messages that can no longer expire
                raise

    async def tick(self) -> None:
        """Expire sessions and leases, rebalance, dead-letter exhausted messages (tests call it directly)."""
        now_s = self.clock()
        now_ms = int(now_s * 1000)
        woke = False
        for group in list(self.groups.values()):
            if not self.owns(group):
                continue  # its state partition moved away during this tick
            try:
                woke |= await self._tick_group(group, now_s, now_ms)
            except NotCoordinator:
                continue  # moved away mid-tick: its new coordinator expires it
            except GoQueueError as exc:  # e.g. a dead-letter topic's leader moving: the other groups still tick
                log.warning("consumers.tick_group_failed", extra={"group": group.name, "error": exc.message,
                                                                  "code": exc.code})
        if woke:
            self.notify()

    async def _tick_group(self, group: Group, now_s: float, now_ms: int) -> bool:
        woke = False
        eff = self.effective(group)
        changes = Changes()
        woke |= self._expire_members(group, eff, now_s, changes)
        exhausted: list[tuple[TP, list[int]]] = []
        for tp in list(group.cursors):
            cursor = group.cursors[tp]
            if tp[0] not in self.broker.registry.topics:  # the topic was deleted: so are its offsets
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
        await self.persist(group, changes)
        for tp, offsets in exhausted:
            await self.delivery.dead_letter(group, tp, offsets)
        return woke

    def _expire_members(self, group: Group, eff: Effective, now_s: float, changes: Changes) -> bool:
        gone = group.expire(now_s, eff.session_timeout_s)
        for member in gone:
            self.metrics.session_expirations.labels(group.name).inc()
            log.info("group.member_expired", extra={"group": group.name, "member": member.member_id})
        if group.mode is not GroupMode.ORDERED:
            return bool(gone)
        partitions = self.partition_counts(group.topics)
        if gone or (group.members and group.assignment_changed(partitions)):
            group.rebalance(partitions, eff.assignor)
            self.metrics.rebalances.labels(group.name).inc()
            log.info("group.rebalance", extra={"group": group.name, "generation": group.generation,
                                               "members": len(group.members), "reason": "session timeout"
                                               if gone else "partitions changed"})
            changes.group = True
            return True
        return False

    # -- shared helpers (also used by delivery.py) -----------------------------------------------------------

    def effective(self, group: Group) -> Effective:
        return group.effective(self.settings)

    def notify(self) -> None:
        """Wake every long-polling consume: something it may be waiting for changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    def group(self, name: str) -> Group:
        self.check_owner(name)
        group = self.groups.get(name)
        if group is None:
            raise GroupNotFound(f"consumer group {name!r} does not exist", group=name)
        return group

    def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        registry = self.broker.registry.topics
        return {t: registry[t].partitions if t in registry else 0 for t in topics}

    def check_topic(self, topic: str) -> int:
        """The topic's partition count; refuses internal topics."""
        if is_internal(topic):
            raise InvalidRequest(f"{topic!r} is an internal topic; groups cannot consume it")
        return self.broker.registry.get(topic).partitions

    async def bounds(self, tp: TP, timestamp_ms: int | None = None) -> PartitionBounds:
        """Log start and high watermark of a partition, wherever it is led (`reader.partition_bounds`)."""
        return await reader.partition_bounds(self.broker, tp[0], tp[1], timestamp_ms)

    async def cursor(self, group: Group, tp: TP, start_from: OffsetReset | None, changes: Changes) -> Cursor:
        """The group's cursor in a partition. The first one of a topic starts every partition of it at once
        (`offsets.start_offset`); raises the partition's error when its bounds cannot be read now."""
        cursor = group.cursors.get(tp)
        if cursor is None:
            unreadable = await self.start_topic(group, tp[0], start_from, changes)
            cursor = group.cursors.get(tp)
            if cursor is None:
                raise unreadable.get(tp[1]) or PartitionNotFound(
                    f"topic {tp[0]!r} has no partition {tp[1]}", topic=tp[0], partition=tp[1])
        return cursor

    async def start_topic(self, group: Group, topic: str, start_from: OffsetReset | None,
                          changes: Changes) -> dict[int, GoQueueError]:
        """Pin every partition of `topic` the group has no cursor in; returns the errors of those whose bounds
        could not be read now (no leader, leader unreachable), which a later request pins."""
        missing = [p for p in range(self.broker.registry.get(topic).partitions) if (topic, p) not in group.cursors]
        looked_up = await asyncio.gather(*(self.bounds((topic, p)) for p in missing), return_exceptions=True)
        unreadable: dict[int, GoQueueError] = {}
        # Decided after the lookups, between which another request may have started the topic.
        started = any(t == topic for t, _ in group.cursors)
        policy = start_from or OffsetReset(self.effective(group).auto_offset_reset)
        for partition, bounds in zip(missing, looked_up, strict=True):
            if isinstance(bounds, GoQueueError) and bounds.retriable:
                unreadable[partition] = bounds
                continue
            if isinstance(bounds, BaseException):
                raise bounds
            tp = (topic, partition)
            if tp not in group.cursors:
                group.cursors[tp] = Cursor.starting_at(start_offset(bounds, policy, started))
                changes.cursors.add(tp)
        if topic not in group.topics:
            group.topics.add(topic)
            changes.group = True
        return unreadable

    async def persist(self, group: Group, changes: Changes) -> None:
        """Write the current value of every touched key; returns once durable.

        A group deleted meanwhile writes nothing (its tombstones are written: nothing of it may come back). A group
        whose state partition moved away (dropped, or reloaded at a new epoch) fails with NOT_COORDINATOR: the
        change is not durable, so the caller must not answer as if it were.

        A cursor record carries the leases it passes that no write has carried yet (`Cursor.unwritten`): those of
        a concurrent consume still reading another partition, or of one that failed before persisting. Without
        them a replay after a failover would take those offsets as acked and never deliver them.
        """
        if not self.owns(group):
            if group.dead:
                return
            raise NotCoordinator(f"group {group.name!r} moved to another coordinator during the request; retry",
                                 group=group.name)
        epoch = self.check_owner(group.name)
        records: list[state_store.StateRecord] = [state_store.group_record(group)] if changes.group else []
        slots = set(changes.slots)
        marks: list[tuple[Cursor, int]] = []
        for tp in sorted(changes.cursors):
            cursor = group.cursors.get(tp)
            if cursor is None:
                records.append((state_store.offset_key(group.name, tp), None))
                continue
            records.append(state_store.cursor_record(group.name, tp, cursor))
            slots.update((tp, offset) for offset in cursor.unwritten())
            marks.append((cursor, cursor.mark_written()))
        for tp, offset in sorted(slots):
            cursor = group.cursors.get(tp)
            slot = cursor.slots.get(offset) if cursor is not None else None
            records.append(state_store.slot_record(group.name, tp, slot) if slot is not None
                           else state_store.slot_tombstone(group.name, tp, offset))
        try:
            await self.store.write(self.store.partition_for(group.name), epoch, records)
        except BaseException:
            for cursor, previous in marks:
                cursor.unmark_written(previous)
            raise
        self.metrics.state_records.inc(len(records))

    def _new_group(self, name: str, mode: GroupMode, config: GroupConfig | None = None) -> Group:
        if not _GROUP_NAME.match(name) or name in {".", ".."}:
            raise InvalidRequest(f"invalid group name {name!r}: 1-249 characters of letters, digits, '.', '_', '-'")
        if len(self.groups) >= self.settings.max_groups:
            raise Overloaded(f"this broker holds consumers.maxGroups={self.settings.max_groups} groups")
        group = self.groups[name] = Group(name=name, mode=mode, config=config or GroupConfig())
        log.info("group.created", extra={"group": name, "mode": mode.value})
        return group

    def get_or_create(self, name: str, mode: GroupMode, changes: Changes) -> Group:
        self.check_owner(name)
        group = self.groups.get(name)
        if group is None:
            group = self._new_group(name, mode)
            changes.group = True
        return group

    def live_members(self, group: Group) -> int:
        group.expire(self.clock(), self.effective(group).session_timeout_s)
        return len(group.members)

    # -- group administration --------------------------------------------------------------------------------

    async def declare(self, name: str, spec: GroupSpec) -> GroupInfo:
        """Create the group, or update its settings (the operator's declarative path)."""
        self.check_owner(name)
        for topic in spec.topics:
            self.check_topic(topic)
        changes = Changes(group=True)
        group = self.groups.get(name)
        if group is None:
            group = self._new_group(name, spec.mode, spec.config)
        elif group.mode is not spec.mode:
            raise InvalidConfig(f"group {name!r} is {group.mode.value}; a group's mode cannot change (delete it "
                                "and declare it again)")
        group.config = spec.config
        if spec.paused is not None:
            group.paused = spec.paused
        for topic in spec.topics:
            group.topics.add(topic)
            for partition in range(self.broker.registry.get(topic).partitions):
                await self.cursor(group, (topic, partition), None, changes)
        await self.persist(group, changes)
        self.notify()
        return await self.describe(name)

    async def delete(self, name: str, force: bool = False) -> None:
        group = self.group(name)
        members = self.live_members(group)
        if members and not force:
            raise GroupHasMembers(f"group {name!r} has {members} live members; stop them first or force",
                                  group=name, members=members)
        epoch = self.check_owner(name)
        group.dead = True
        del self.groups[name]
        await self.store.write(self.store.partition_for(name), epoch, state_store.group_tombstones(group))
        self.notify()
        log.info("group.deleted", extra={"group": name})

    async def list_groups(self) -> list[GroupSummary]:
        """The groups this broker coordinates (`router.py` gathers them from every coordinator)."""
        return await readouts.list_groups(self)

    async def describe(self, name: str) -> GroupInfo:
        return await readouts.describe(self, name)

    def inflight(self, name: str | None, limit: int) -> InflightList:
        """Unacked messages of one group, or of every group this broker coordinates (`router.py` gathers)."""
        return readouts.inflight(self, name, limit)

    async def pause(self, name: str | None) -> PauseResponse:
        return await self._set_paused(name, True)

    async def resume(self, name: str | None) -> PauseResponse:
        return await self._set_paused(name, False)

    async def _set_paused(self, name: str | None, paused: bool) -> PauseResponse:
        self.check_ready()
        if name is not None:
            group = self.group(name)
            group.paused = paused
            await self.persist(group, Changes(group=True))
            self.notify()
            log.info("group.paused" if paused else "group.resumed", extra={"group": name})
            return PauseResponse(paused=paused or self.all_paused, all=False, groups=[name])
        # Pause-all is one metadata flag for the whole cluster; proposing the value it has already is a no-op, so
        # the router may ask every coordinator to do this.
        if self.all_paused != paused:
            await self.broker.membership.propose(commands.set_paused_all(paused))
        if not paused:  # resume --all also lifts every per-group pause: "everything flows again"
            for group in list(self.groups.values()):
                if group.paused and self.owns(group):
                    group.paused = False
                    await self.persist(group, Changes(group=True))
        self.notify()
        log.info("consumers.all_paused" if paused else "consumers.all_resumed", extra={"groups": len(self.groups)})
        return PauseResponse(paused=paused, all=True, groups=self.coordinated_names())

    # -- ordered membership ----------------------------------------------------------------------------------

    async def join(self, name: str, request: JoinRequest, peer_host: str) -> JoinResponse:
        changes = Changes()
        topics = tuple(sorted(set(request.topics)))
        for topic in topics:
            self.check_topic(topic)
        group = self.get_or_create(name, GroupMode.ORDERED, changes)
        if group.mode is not GroupMode.ORDERED:
            raise InvalidRequest(f"group {name!r} is shared: consume with a consumerId, without joining")
        eff = self.effective(group)
        member, rebalanced = group.join(
            request.member_id, request.client_id, request.host or peer_host, topics, self.clock(),
            self.partition_counts(set(group.topics) | set(topics) | {t for m in group.members.values()
                                                                   for t in m.topics}),
            lambda: self.new_member_id(request.client_id), self.settings.max_members, eff.assignor)
        if rebalanced:
            self.metrics.rebalances.labels(name).inc()
            log.info("group.rebalance", extra={"group": name, "generation": group.generation,
                                               "members": len(group.members), "reason": "join"})
        changes.group = True  # offsets start at the first consume, where startFrom (from-beginning) applies
        await self.persist(group, changes)
        self.notify()
        return JoinResponse(member_id=member.member_id, generation=group.generation,
                            state=group.state(self.all_paused),
                            assignments=[TopicPartition(topic=t, partition=p) for t, p in member.assignment],
                            session_timeout_ms=int(eff.session_timeout_s * 1000),
                            paused=group.paused or self.all_paused)

    def heartbeat(self, name: str, member_id: str, generation: int) -> HeartbeatResponse:
        group = self.group(name)
        member = group.heartbeat(member_id, generation, self.clock())
        return HeartbeatResponse(
            generation=group.generation, state=group.state(self.all_paused),
            rejoin=generation != group.generation or member.generation != group.generation,
            paused=group.paused or self.all_paused,
            assignments=[TopicPartition(topic=t, partition=p) for t, p in member.assignment])

    async def leave(self, name: str, member_id: str) -> None:
        group = self.group(name)
        eff = self.effective(group)
        group.leave(member_id, self.partition_counts(group.topics), eff.assignor)
        if group.mode is GroupMode.ORDERED:
            self.metrics.rebalances.labels(name).inc()
            log.info("group.rebalance", extra={"group": name, "generation": group.generation,
                                               "members": len(group.members), "reason": "leave"})
        await self.persist(group, Changes(group=True))
        self.notify()

    async def commit(self, name: str, request: CommitRequest) -> CommitResponse:
        """Ordered mode (or any group without members): record the next offset to read per partition."""
        self.check_owner(name)
        for o in request.offsets:  # validate everything first: a refused commit changes nothing, creates nothing
            self.check_topic(o.topic)
            bounds = await self.bounds((o.topic, o.partition))
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
        group = self.get_or_create(name, GroupMode.ORDERED, changes)
        for o in request.offsets:
            tp = (o.topic, o.partition)
            (await self.cursor(group, tp, None, changes)).commit(o.offset)
            changes.cursors.add(tp)
        await self.persist(group, changes)
        self.metrics.commits.labels(name).inc()
        return CommitResponse(committed=request.offsets)

    # -- offset resets ---------------------------------------------------------------------------------------

    async def reset_offsets(self, name: str, request: OffsetResetRequest) -> OffsetResetPlan:
        self.check_owner(name)
        count = self.check_topic(request.topic)
        if request.partition is not None and request.partition >= count:
            raise PartitionNotFound(f"topic {request.topic!r} has partitions 0..{count - 1}, not "
                                    f"{request.partition}", topic=request.topic, partition=request.partition)
        partitions = [request.partition] if request.partition is not None else list(range(count))
        bounds = {p: await self.bounds((request.topic, p), request.timestamp_ms) for p in partitions}
        self.check_owner(name)  # the lookups awaited: look at the group as it is now
        group = self.groups.get(name)
        if group is not None and not request.dry_run:
            members = self.live_members(group)
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
        group = self.get_or_create(name, GroupMode.SHARED, changes)
        if request.partition is not None:  # the topic's other partitions start as they would without the reset
            await self.start_topic(group, request.topic, None, changes)
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
            group.rebalance(self.partition_counts(group.topics), self.effective(group).assignor)
            self.metrics.rebalances.labels(name).inc()
            changes.group = True
        await self.persist(group, changes)
        self.notify()
        log.info("group.offsets_reset", extra={"group": name, "topic": request.topic, "to": request.to.value,
                                               "partitions": len(plan)})
        return OffsetResetPlan(group=name, dry_run=False, applied=True, partitions=plan)
