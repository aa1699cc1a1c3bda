"""`GroupCoordinator`: the I/O shell around the group state machines (`groups.py`, `leases.py`).

It holds every group in memory, persists each change to `__consumer_state` before answering (`state_store.py`),
replays that topic on start-up, and runs one background task (`_tick_loop`, every `consumers.expiryInterval`) that
expires leases and sessions and moves exhausted messages to their dead-letter topic. Deliveries (consume, ack,
nack, release, dead letters) live in `delivery.py`.

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
from collections.abc import Callable, Iterable

from prometheus_client.core import Metric

from goqueue.broker import Broker
from goqueue.config import ConsumersSection, OffsetReset
from goqueue.consumers import state_store
from goqueue.consumers.assignment import TP
from goqueue.consumers.delivery import Delivery
from goqueue.consumers.groups import Effective, Group
from goqueue.consumers.leases import Cursor
from goqueue.consumers.offsets import PartitionBounds, plan_reset
from goqueue.consumers.state_store import Changes, StateStore, is_internal
from goqueue.errors import (
    GoQueueError,
    GroupHasMembers,
    GroupNotFound,
    InvalidConfig,
    InvalidRequest,
    NotReady,
    Overloaded,
    PartitionNotFound,
)
from goqueue.metrics import ConsumerMetrics, gauge, register_state_collector
from goqueue.models import (
    GROUP_NAME_PATTERN,
    CommitRequest,
    CommitResponse,
    GroupConfig,
    GroupInfo,
    GroupMode,
    GroupOffset,
    GroupSpec,
    GroupSummary,
    HeartbeatResponse,
    InflightList,
    InflightMessage,
    JoinRequest,
    JoinResponse,
    MemberInfo,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
    TopicPartition,
)

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
        self.store = StateStore(broker, settings.state_partitions)
        self.groups: dict[str, Group] = {}
        self.all_paused = False
        self.ready = False
        self.delivery = Delivery(self)
        self._changed = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        register_state_collector(broker.metrics.registry, self._collect_gauges)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the state topic if needed, replay it, start expiring leases. Call after `Broker.start`."""
        await self.store.ensure_topic()
        replayed = await self.store.load(self.clock())
        self.groups, self.all_paused = replayed.groups, replayed.all_paused
        self.ready = True
        leases = sum(g.pending() for g in self.groups.values())
        log.info("consumers.ready", extra={"groups": len(self.groups), "records": replayed.records,
                                           "unacked": leases})
        self._ticker = asyncio.create_task(self._tick_loop(), name="consumer-expiry")

    async def stop(self) -> None:
        self.ready = False
        self.notify()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady("consumer groups are loading their state, or the broker is shutting down")

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
        if woke:
            self.notify()

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
        self.check_ready()
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

    def bounds(self, tp: TP, timestamp_ms: int | None = None) -> PartitionBounds:
        offsets = self.broker.partition_offsets(tp[0], tp[1], timestamp_ms)
        return PartitionBounds(int(offsets["earliest"] or 0), int(offsets["latest"] or 0), offsets["forTimestamp"])

    def cursor(self, group: Group, tp: TP, start_from: OffsetReset | None, changes: Changes) -> Cursor:
        """The group's cursor in a partition, created at earliest / latest the first time."""
        cursor = group.cursors.get(tp)
        if cursor is None:
            bounds = self.bounds(tp)
            policy = start_from.value if start_from else self.effective(group).auto_offset_reset
            start = bounds.log_start if policy == OffsetReset.EARLIEST.value else bounds.high_watermark
            cursor = group.cursors[tp] = Cursor.starting_at(start)
            changes.cursors.add(tp)
            if tp[0] not in group.topics:
                group.topics.add(tp[0])
                changes.group = True
        return cursor

    async def persist(self, group: Group | None, changes: Changes) -> None:
        """Write the current value of every touched key; returns once durable."""
        if group is None:
            records: list[state_store.StateRecord] = [
                (state_store.GLOBAL_PAUSED, {"paused": self.all_paused})] if changes.group else []
            await self.store.write(None, records)
            self.metrics.state_records.inc(len(records))
            return
        if self.groups.get(group.name) is not group:
            return  # deleted (its tombstones are written) or replaced meanwhile: nothing of it may come back
        records = [state_store.group_record(group)] if changes.group else []
        for tp in sorted(changes.cursors):
            cursor = group.cursors.get(tp)
            records.append(state_store.cursor_record(group.name, tp, cursor) if cursor is not None
                           else (state_store.offset_key(group.name, tp), None))
        for tp, offset in sorted(changes.slots):
            cursor = group.cursors.get(tp)
            slot = cursor.slots.get(offset) if cursor is not None else None
            records.append(state_store.slot_record(group.name, tp, slot) if slot is not None
                           else state_store.slot_tombstone(group.name, tp, offset))
        await self.store.write(group.name, records)
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
        self.check_ready()
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
        self.check_ready()
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
                self.cursor(group, (topic, partition), None, changes)
        await self.persist(group, changes)
        self.notify()
        return self.describe(name)

    async def delete(self, name: str, force: bool = False) -> None:
        group = self.group(name)
        members = self.live_members(group)
        if members and not force:
            raise GroupHasMembers(f"group {name!r} has {members} live members; stop them first or force",
                                  group=name, members=members)
        group.dead = True
        del self.groups[name]
        await self.store.write(name, state_store.group_tombstones(group))
        self.notify()
        log.info("group.deleted", extra={"group": name})

    def list_groups(self) -> list[GroupSummary]:
        self.check_ready()
        summaries = []
        for name in sorted(self.groups):
            group = self.groups[name]
            offsets = self._offsets(group)
            summaries.append(GroupSummary(
                name=name, mode=group.mode, state=group.state(self.all_paused), members=len(group.members),
                topics=sorted(group.topics), lag=sum(o.lag or 0 for o in offsets), inflight=group.leased()))
        return summaries

    def describe(self, name: str) -> GroupInfo:
        group = self.group(name)
        eff = self.effective(group)
        members = [MemberInfo(member_id=m.member_id, client_id=m.client_id, host=m.host,
                              assignments=[TopicPartition(topic=t, partition=p) for t, p in m.assignment],
                              last_heartbeat_ms=int(m.last_seen_s * 1000), generation=m.generation)
                   for m in sorted(group.members.values(), key=lambda m: m.member_id)]
        config = GroupConfig(
            visibility_timeout_s=eff.visibility_timeout_s, max_deliveries=eff.max_deliveries,
            inflight_capacity=eff.inflight_capacity, session_timeout_s=eff.session_timeout_s,
            dead_letter_topic=eff.dead_letter_topic, auto_offset_reset=OffsetReset(eff.auto_offset_reset),
            assignor=eff.assignor)
        return GroupInfo(
            name=name, mode=group.mode, state=group.state(self.all_paused), paused=group.paused or self.all_paused,
            generation=group.generation, config=config, topics=sorted(group.topics), members=members,
            offsets=self._offsets(group), inflight=group.leased(), inflight_capacity=eff.inflight_capacity)

    def _offsets(self, group: Group) -> list[GroupOffset]:
        """Every partition of the group's topics; committed is None where the group has not started yet."""
        tps = set(group.cursors) | {(t, p) for t, n in self.partition_counts(group.topics).items() for p in range(n)}
        offsets = []
        for topic, partition in sorted(tps):
            cursor = group.cursors.get((topic, partition))
            held = self.broker.partitions.get((topic, partition))
            committed = cursor.committed if cursor is not None else None
            end = held.log.high_watermark if held is not None else (committed or 0)
            offsets.append(GroupOffset(topic=topic, partition=partition, committed=committed, end_offset=end,
                                       lag=None if committed is None else max(0, end - committed),
                                       inflight=cursor.leased() if cursor is not None else 0))
        return offsets

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
        self.all_paused = paused
        await self.persist(None, Changes(group=True))
        if not paused:  # resume --all also lifts every per-group pause: "everything flows again"
            for group in list(self.groups.values()):
                if group.paused:
                    group.paused = False
                    await self.persist(group, Changes(group=True))
        self.notify()
        log.info("consumers.all_paused" if paused else "consumers.all_resumed", extra={"groups": len(self.groups)})
        return PauseResponse(paused=paused, all=True, groups=sorted(self.groups))

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
        self.check_ready()
        for o in request.offsets:  # validate everything first: a refused commit changes nothing, creates nothing
            self.check_topic(o.topic)
            bounds = self.bounds((o.topic, o.partition))
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
            self.cursor(group, tp, None, changes).commit(o.offset)
            changes.cursors.add(tp)
        await self.persist(group, changes)
        self.metrics.commits.labels(name).inc()
        return CommitResponse(committed=request.offsets)

    # -- offset resets ---------------------------------------------------------------------------------------

    async def reset_offsets(self, name: str, request: OffsetResetRequest) -> OffsetResetPlan:
        self.check_ready()
        count = self.check_topic(request.topic)
        if request.partition is not None and request.partition >= count:
            raise PartitionNotFound(f"topic {request.topic!r} has partitions 0..{count - 1}, not "
                                    f"{request.partition}", topic=request.topic, partition=request.partition)
        group = self.groups.get(name)
        if group is not None and not request.dry_run:
            members = self.live_members(group)
            if members and not request.force:
                raise GroupHasMembers(
                    f"group {name!r} has {members} live members; stop them, or use --force (they lose their "
                    "leases or are rebalanced)", group=name, members=members)
        partitions = [request.partition] if request.partition is not None else list(range(count))
        bounds = {p: self.bounds((request.topic, p), request.timestamp_ms) for p in partitions}
        committed = {p: group.cursors[(request.topic, p)].committed if group and (request.topic, p) in group.cursors
                     else None for p in partitions}
        plan = plan_reset(request, bounds, committed)
        if request.dry_run:
            return OffsetResetPlan(group=name, dry_run=True, applied=False, partitions=plan)
        changes = Changes()
        group = self.get_or_create(name, GroupMode.SHARED, changes)
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

    # -- read-outs -------------------------------------------------------------------------------------------

    def inflight(self, name: str | None, limit: int) -> InflightList:
        self.check_ready()
        groups = [self.group(name)] if name is not None else [self.groups[n] for n in sorted(self.groups)]
        messages: list[InflightMessage] = []
        total = 0
        for group in groups:
            for tp, cursor in sorted(group.cursors.items()):
                for offset in sorted(cursor.slots):
                    total += 1
                    if len(messages) >= limit:
                        continue
                    slot = cursor.slots[offset]
                    leased = slot.state.value == "l"
                    messages.append(InflightMessage(
                        group=group.name, topic=tp[0], partition=tp[1], offset=offset,
                        state="leased" if leased else "waiting", consumer_id=slot.consumer,
                        lease_id=str(cursor.lease_id(tp[0], tp[1], slot)) if leased else None,
                        delivery_count=slot.deliveries, deadline_ms=slot.deadline_ms))
        return InflightList(messages=messages, total=total, truncated=total > len(messages))

    def _collect_gauges(self) -> Iterable[Metric]:
        lag = gauge("goqueue_consumer_lag", "Records of a partition the group has not settled: high watermark "
                    "minus committed offset.", ["group", "topic", "partition"])
        committed = gauge("goqueue_consumer_committed_offset", "Committed offset (ack floor in shared mode).",
                          ["group", "topic", "partition"])
        inflight = gauge("goqueue_inflight_messages", "Messages leased to consumers and not yet acked.", ["group"])
        pending = gauge("goqueue_consumer_unacked_messages", "Leased plus waiting for redelivery: what counts "
                        "against the inflight capacity.", ["group"])
        capacity = gauge("goqueue_inflight_capacity", "Most unacked messages the group may hold.", ["group"])
        members = gauge("goqueue_group_members", "Live members (ordered) or recently seen consumers (shared).",
                        ["group"])
        paused = gauge("goqueue_group_paused", "1 while the group gets no deliveries.", ["group"])
        for name, group in list(self.groups.items()):
            for offset in self._offsets(group):
                if offset.committed is None:
                    continue
                labels = [name, offset.topic, str(offset.partition)]
                lag.add_metric(labels, offset.lag or 0)
                committed.add_metric(labels, offset.committed or 0)
            inflight.add_metric([name], group.leased())
            pending.add_metric([name], group.pending())
            capacity.add_metric([name], self.effective(group).inflight_capacity)
            members.add_metric([name], len(group.members))
            paused.add_metric([name], 1.0 if group.paused or self.all_paused else 0.0)
        yield from (lag, committed, inflight, pending, capacity, members, paused)
