"""`Delivery`: consume (both modes, long-poll), ack, nack, release; a nack of a last delivery dead-letters at once.

Shared mode, one consume: for each partition of the topic (a rotating start, so no partition starves), first
redeliver WAITING messages that are due, then lease new records from the cursor's `next`, while the group holds
fewer than `inflightCapacity` unacked messages. The leases are durable in `__consumer_state` before the records
are returned, so a crash after the response can only redeliver, never lose, and never forget a delivery count.

Ordered mode, one consume: the member must be on the current generation; records come from its assigned
partitions from its read position (the committed offset after each rebalance). Nothing is written: the member
commits offsets when it has processed them.

A paused group answers with no records and `paused: true` after the long-poll (or at once when resumed).

In a cluster the coordinator may not hold a replica of every partition a group reads: records and bounds then come
from the partition's leader (`reader.py`), a partition that cannot be read right now (no leader, leader moving) is
skipped for this round while the others still deliver, and a long-poll over partitions held elsewhere re-checks
every `REMOTE_POLL_S` (their appends wake nothing here). A long-poll whose group moves to another coordinator ends
with NOT_COORDINATOR, so the client retries there.

It works on the coordinator's shared table (`coordinated.py`) with the parts it needs, each given to it: cursors
(`cursors.py`), the writer (`persistence.py`) and dead letters (`dead_letters.py`); records come from the host
(`port.Records`), wake-ups from this broker's own replicas (`port.StatePartitions.local_replica`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from goqueue.config import ConsumersSection
from goqueue.consumers import reader
from goqueue.consumers.assignment import TP
from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.cursors import GroupCursors
from goqueue.consumers.dead_letters import DeadLetters
from goqueue.consumers.groups import Group, Member
from goqueue.consumers.leases import Cursor, LeaseId, Settle, Slot
from goqueue.consumers.persistence import GroupWriter
from goqueue.consumers.port import ConsumerHost
from goqueue.consumers.state_store import Changes
from goqueue.errors import (
    FencedGeneration,
    InflightLimitReached,
    InvalidRequest,
    LeaseNotFound,
    NotCoordinator,
    NotLeader,
    NotReady,
    PartitionOffline,
    Unavailable,
)
from goqueue.metrics import ConsumerMetrics
from goqueue.models import (
    AckRequest,
    AckResponse,
    ConsumeRequest,
    ConsumeResponse,
    DeliveredRecord,
    Encoding,
    GroupMode,
    NackRequest,
    ReadPosition,
    choose_encoding,
    encode_bytes,
)
from goqueue.storage.batch import Record

log = logging.getLogger(__name__)

Delivered = tuple[TP, Record, Slot | None, Cursor]

REMOTE_POLL_S = 0.25  # long-poll re-check for partitions this broker holds no replica of
JUST_DUE_S = 0.02  # a message due for less than this is delivered at once; an older due one waits for readability
# A partition that cannot be read this round (leader moving or unreachable): skipped; the others still deliver.
UNREADABLE = (NotLeader, NotReady, PartitionOffline, Unavailable)


@dataclass(frozen=True)
class _LeaseTerms:
    consumer: str
    now_ms: int
    until_ms: int
    max_bytes: int


class Delivery:
    def __init__(self, host: ConsumerHost, table: CoordinatedGroups, cursors: GroupCursors, writer: GroupWriter,
                 dead_letters: DeadLetters, settings: ConsumersSection, metrics: ConsumerMetrics,
                 clock: Callable[[], float]) -> None:
        self.host = host
        self.table = table
        self.cursors = cursors
        self.writer = writer
        self.dead_letters = dead_letters
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._rotation: dict[str, int] = defaultdict(int)

    # -- consume ---------------------------------------------------------------------------------------------

    async def consume(self, name: str, request: ConsumeRequest, peer_host: str) -> ConsumeResponse:
        changes = Changes()
        group, mode = self._consuming_group(name, request, changes)
        wait_s = min(request.wait_ms / 1000, self.host.max_wait_s)
        deadline = time.monotonic() + wait_s
        max_records = min(request.max_records, self.settings.max_records_per_consume)
        member: Member | None = None  # shared: the membership this long-poll made or renewed
        while True:
            # Take the wake-up events before looking, so a record or ack arriving while this request reads and
            # persists still wakes it (a lost wake-up would hold the long-poll until its deadline).
            events, remote = self._wake_events(group, request)
            paused = group.paused or self.host.paused_all
            at_capacity = False
            delivered: list[Delivered] = []
            read_to: dict[TP, int] = {}  # ordered: the next offset per partition read, for the answer
            if member is not None and group.members.get(member.member_id) is not member:
                # The consumer left (or expired) while this poll waited: a client that gave up on its request
                # (Ctrl-C) and left must not be made a member again, nor leased records, by the poll it abandoned.
                return self._response(group, [], request.encoding, paused)
            if paused:
                self._keep_alive(group, request, peer_host)
            elif mode is GroupMode.SHARED:
                delivered, at_capacity = await self._deliver_shared(group, request, peer_host, max_records, changes)
            else:
                delivered = await self._deliver_ordered(group, request, max_records, changes, read_to)
            if mode is GroupMode.SHARED and member is None:
                member = group.members.get(request.consumer_id or "")
            await self.writer.persist(group, changes)
            changes = Changes()
            remaining = deadline - time.monotonic()
            if not delivered and not self.table.owns(group) and not group.dead:
                raise NotCoordinator(f"group {name!r} moved to another coordinator; retry", group=name)
            if delivered or remaining <= 0 or not self.table.ready or not self.table.owns(group):
                if not delivered and at_capacity and not paused:
                    self.metrics.inflight_limit_reached.labels(name).inc()
                    raise InflightLimitReached(
                        f"group {name!r} holds its inflightCapacity of "
                        f"{group.effective(self.settings).inflight_capacity} "
                        "unacked messages: ack or nack some, or wait for leases to expire", group=name)
                return self._response(group, delivered, request.encoding, paused, read_to)
            await self._wait(group, request, events, min(remaining, REMOTE_POLL_S) if remote else remaining)

    def _consuming_group(self, name: str, request: ConsumeRequest, changes: Changes) -> tuple[Group, GroupMode]:
        """The group a consume is for, created (shared) on first use; the request must match its mode."""
        self.table.check_ready()
        if (request.consumer_id is None) == (request.member_id is None):
            raise InvalidRequest("send consumerId (shared groups) or memberId and generation (ordered groups)")
        mode = GroupMode.SHARED if request.consumer_id is not None else GroupMode.ORDERED
        if mode is GroupMode.SHARED and request.topic is None:
            raise InvalidRequest("a shared consume names its topic")
        if request.topic is not None:
            self.cursors.check_topic(request.topic)
        # Ordered members join first (GroupNotFound otherwise); a shared group appears on first consume.
        group = self.table.group(name) if mode is GroupMode.ORDERED else self.table.get_or_create(name, mode, changes)
        if group.mode is not mode:
            raise InvalidRequest(f"group {name!r} is {group.mode.value}: " + (
                "join it and consume with memberId and generation" if group.mode is GroupMode.ORDERED
                else "consume with a consumerId, without joining"))
        return group, mode

    def _keep_alive(self, group: Group, request: ConsumeRequest, peer_host: str) -> None:
        """A consume of a paused group still counts as a heartbeat (paused is a state, not an error)."""
        if group.mode is GroupMode.ORDERED:
            group.check_generation(request.member_id, request.generation).last_seen_s = self.clock()
        elif request.consumer_id is not None and request.topic is not None:
            group.seen(request.consumer_id, peer_host, request.topic, self.clock(), self.settings.max_members)

    async def _deliver_shared(self, group: Group, request: ConsumeRequest, host: str, max_records: int,
                              changes: Changes) -> tuple[list[Delivered], bool]:
        assert request.consumer_id is not None
        assert request.topic is not None
        consumer, topic = request.consumer_id, request.topic
        now_s = self.clock()
        group.seen(consumer, host, topic, now_s, self.settings.max_members)
        lease = _LeaseTerms(consumer, int(now_s * 1000),
                            int(now_s * 1000) + int(group.effective(self.settings).visibility_timeout_s * 1000),
                            min(request.max_bytes, self.host.max_fetch_bytes))
        count = self.host.topic(topic).partitions
        start = self._rotation[group.name]
        self._rotation[group.name] = start + 1
        out: list[Delivered] = []
        blocked = False
        for i in range(count):
            tp = (topic, (start + i) % count)
            if len(out) >= max_records:
                break
            try:
                cursor = await self.cursors.cursor(group, tp, request.start_from, changes)
                out.extend(await self._redeliver(group, tp, cursor, lease, max_records - len(out), changes))
                taken, full = await self._lease_new(group, tp, cursor, lease, max_records - len(out), changes)
            except UNREADABLE as exc:
                if isinstance(exc, NotCoordinator):
                    raise
                log.debug("delivery.partition_skipped", extra={"topic": tp[0], "partition": tp[1],
                                                               "reason": exc.message})
                continue
            out.extend(taken)
            blocked = blocked or full
        if out:
            self.metrics.delivered.labels(group.name, topic).inc(len(out))
        return out, blocked and not out

    async def _redeliver(self, group: Group, tp: TP, cursor: Cursor, lease: _LeaseTerms, budget: int,
                         changes: Changes) -> list[Delivered]:
        """WAITING messages whose redelivery time has come, oldest first."""
        due = cursor.due(lease.now_ms, group.effective(self.settings).max_deliveries, budget)
        if not due:
            return []
        read = await reader.read_at(self.host, tp[0], tp[1], due, lease.max_bytes)
        out: list[Delivered] = []
        for offset in due:
            record = read.found.get(offset)
            if record is None:
                if offset not in read.gone:
                    continue  # not readable now (a new leader's lagging high watermark): it stays due
                slot = cursor.slots.get(offset)  # retention deleted it while it waited: nothing is left to deliver
                if slot is not None and not slot.dead_lettering:
                    log.warning("lease.record_gone", extra={"group": group.name, "topic": tp[0],
                                                            "partition": tp[1], "offset": offset})
                    self.metrics.records_skipped.labels(group.name, tp[0]).inc()
                    cursor.settle(offset)
                    changes.slots.add((tp, offset))
                    changes.cursors.add(tp)
                continue
            redelivered = cursor.redeliver(offset, lease.consumer, lease.until_ms)
            if redelivered is None:
                continue  # another consume took it during the read
            out.append((tp, record, redelivered, cursor))
            changes.slots.add((tp, offset))
            self.metrics.redeliveries.labels(group.name, tp[0]).inc()
        return out

    async def _lease_new(self, group: Group, tp: TP, cursor: Cursor, lease: _LeaseTerms, budget: int,
                         changes: Changes) -> tuple[list[Delivered], bool]:
        """Records never delivered, from the cursor's `next`; (delivered, blocked by inflight capacity)."""
        capacity = group.effective(self.settings).inflight_capacity
        want = min(budget, capacity - group.pending())
        if capacity - group.pending() <= 0:
            return [], True
        if want <= 0:
            return [], False
        # From the cursor's `next`; retention may have passed it (reading then starts at the log start).
        result = await reader.read_from(self.host, tp[0], tp[1], cursor.next, want, lease.max_bytes)
        if result.removed:
            log.warning("lease.records_removed_unread", extra={"group": group.name, "topic": tp[0],
                                                               "partition": tp[1], "from": cursor.next,
                                                               "count": result.removed})
            self.metrics.records_skipped.labels(group.name, tp[0]).inc(result.removed)
        out: list[Delivered] = []
        full = False
        for record in result.records:
            if record.offset < cursor.next:
                continue  # another consume took it meanwhile
            if capacity - group.pending() <= 0:
                full = True  # another consume filled the capacity meanwhile: this one and the rest stay unread
                break
            slot = cursor.deliver_new(record.offset, lease.consumer, lease.until_ms)
            out.append((tp, record, slot, cursor))
            changes.slots.add((tp, record.offset))
        # Past a compaction gap (or records retention removed) at the end of what was read — never past a record
        # left unread for capacity.
        skipped = not full and len(result.records) < want and cursor.skip_to(result.next_offset)
        if out or skipped:
            changes.cursors.add(tp)
        return out, full

    async def _deliver_ordered(self, group: Group, request: ConsumeRequest, max_records: int,
                               changes: Changes, read_to: dict[TP, int]) -> list[Delivered]:
        member = group.check_generation(request.member_id, request.generation)
        member.last_seen_s = self.clock()
        generation = group.generation
        tps = [tp for tp in member.assignment if request.topic is None or tp[0] == request.topic]
        if not tps:
            return []
        positions = group.positions.get(member.member_id, {})
        # Client-held positions (`positions` sent, even empty): a partition it lists is read from there, every other
        # from its committed offset — never from the broker's read position, which a lost answer moved on.
        given = None if request.positions is None else {(p.topic, p.partition): p.offset for p in request.positions}
        advanced: dict[TP, int] = {}
        start = self._rotation[group.name]
        self._rotation[group.name] = start + 1
        max_bytes = min(request.max_bytes, self.host.max_fetch_bytes)
        out: list[Delivered] = []
        for i in range(len(tps)):
            tp = tps[(start + i) % len(tps)]
            budget = max_records - len(out)
            if budget <= 0:
                break
            try:
                cursor = await self.cursors.cursor(group, tp, request.start_from, changes)
                position = positions.get(tp, cursor.committed) if given is None else given.get(tp, cursor.committed)
                result = await reader.read_from(self.host, tp[0], tp[1], position, budget, max_bytes)
            except UNREADABLE as exc:
                if isinstance(exc, NotCoordinator):
                    raise
                continue
            if group.generation != generation or self.table.groups.get(group.name) is not group:
                raise FencedGeneration(f"group {group.name!r} rebalanced during the read: join again",
                                       group=group.name, generation=group.generation)
            advanced[tp] = max(position, result.next_offset)
            out.extend((tp, record, None, cursor) for record in result.records)
        # Positions move only once the whole response stands: a read fenced above discards what earlier reads
        # took, and the member (keeping those partitions after the rebalance) must read them again.
        group.positions.setdefault(member.member_id, {}).update(advanced)
        read_to.update(advanced)
        if out:
            for topic in {tp[0] for tp, *_ in out}:
                self.metrics.delivered.labels(group.name, topic).inc(sum(1 for tp, *_ in out if tp[0] == topic))
        return out

    def _response(self, group: Group, delivered: list[Delivered], encoding: Encoding | None,
                  paused: bool, read_to: dict[TP, int] | None = None) -> ConsumeResponse:
        records = []
        for (topic, partition), record, slot, cursor in delivered:
            enc = encoding or choose_encoding(record.key, record.value, *(v for _, v in record.headers))
            records.append(DeliveredRecord(
                topic=topic, partition=partition, offset=record.offset, timestamp_ms=record.timestamp_ms,
                key=encode_bytes(record.key, enc), value=encode_bytes(record.value, enc),
                headers={k: encode_bytes(v, enc) or "" for k, v in record.headers}, encoding=enc,
                lease_id=str(cursor.lease_id(topic, partition, slot)) if slot is not None else None,
                delivery_count=slot.deliveries if slot is not None else 1,
                lease_expires_at_ms=slot.deadline_ms if slot is not None else None))
        return ConsumeResponse(group=group.name, records=records, paused=paused,
                               state=group.state(self.host.paused_all),
                               generation=group.generation if group.mode is GroupMode.ORDERED else None,
                               positions=[ReadPosition(topic=t, partition=p, offset=o)
                                          for (t, p), o in sorted((read_to or {}).items())])

    def _wake_events(self, group: Group, request: ConsumeRequest) -> tuple[list[asyncio.Event], bool]:
        """New records in the partitions read, or any coordinator change (ack, expiry, resume, rebalance); and
        whether some partition has no replica here (nothing wakes for it: the wait must poll)."""
        events: list[asyncio.Event] = [self.table.changed]
        remote = False
        for topic in self._topics_of(group, request):
            meta = self.host.topics().get(topic)
            for partition in range(meta.partitions if meta else 0):
                held = self.host.local_replica(topic, partition)
                if held is not None:
                    events.append(held.changed())
                else:
                    remote = True
        return events, remote

    @staticmethod
    def _topics_of(group: Group, request: ConsumeRequest) -> list[str]:
        if request.topic is not None:
            return [request.topic]
        member = group.members.get(request.member_id or "")
        return sorted({t for t, _ in member.assignment}) if member else []

    async def _wait(self, group: Group, request: ConsumeRequest, events: list[asyncio.Event],
                    timeout_s: float) -> None:
        """Sleep until one of `events` fires, a nacked or expired message becomes due, or the deadline."""
        eff = group.effective(self.settings)
        topics = self._topics_of(group, request)
        due = [t for tp, cursor in group.cursors.items() if tp[0] in topics
               if (t := cursor.next_due_ms(eff.max_deliveries)) is not None]
        if due and not (group.paused or self.host.paused_all):
            until_due = min(due) / 1000 - self.clock()
            # Due a while ago yet not delivered: its record is not readable now (a new leader's high watermark
            # still lags); re-check at the remote-poll pace, not in a busy loop. Just due: deliver it now.
            timeout_s = min(timeout_s, max(0.0, until_due) + 0.001 if until_due > -JUST_DUE_S else REMOTE_POLL_S)
        tasks = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(tasks, timeout=max(timeout_s, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    # -- settle ----------------------------------------------------------------------------------------------

    def _shared_group(self, name: str) -> Group:
        group = self.table.group(name)
        if group.mode is not GroupMode.SHARED:
            raise InvalidRequest(f"group {name!r} is ordered: commit offsets instead of acking messages")
        return group

    def _leases(self, group: Group, lease_ids: list[str]) -> list[tuple[LeaseId, Cursor]]:
        found = []
        for text in lease_ids:
            lease = LeaseId.parse(text)
            cursor = group.cursors.get((lease.topic, lease.partition))
            if cursor is None or lease.offset >= cursor.next or lease.delivery < 1:
                raise LeaseNotFound(f"lease {text!r} was never handed out by group {group.name!r}",
                                    group=group.name, lease=text)
            found.append((lease, cursor))
        return found

    async def ack(self, name: str, request: AckRequest) -> AckResponse:
        group = self._shared_group(name)
        changes = Changes()
        response = AckResponse()
        acked: dict[str, int] = defaultdict(int)
        for lease, cursor in self._leases(group, request.lease_ids):
            settle = cursor.ack(lease)
            tp = (lease.topic, lease.partition)
            if settle is Settle.DONE:
                response.acked += 1
                acked[lease.topic] += 1
                changes.slots.add((tp, lease.offset))
                changes.cursors.add(tp)
            elif settle is Settle.ALREADY_DONE:
                response.already_done += 1
            else:
                response.stale.append(str(lease))
        await self.writer.persist(group, changes)
        for topic, n in acked.items():
            self.metrics.acks.labels(name, topic).inc(n)
        if response.acked:
            self.table.notify()  # capacity freed
        return response

    async def nack(self, name: str, request: NackRequest) -> AckResponse:
        return await self._give_back(name, request.lease_ids, request.delay_s, request.reason, release=False)

    async def release(self, name: str, request: AckRequest) -> AckResponse:
        return await self._give_back(name, request.lease_ids, 0.0, None, release=True)

    async def _give_back(self, name: str, lease_ids: list[str], delay_s: float, reason: str | None,
                         release: bool) -> AckResponse:
        group = self._shared_group(name)
        if delay_s > self.settings.max_nack_delay_s:
            raise InvalidRequest(
                f"delay {delay_s:g}s is over consumers.maxNackDelay ({self.settings.max_nack_delay_s:g}s)")
        eff = group.effective(self.settings)
        now_ms = int(self.clock() * 1000)
        changes = Changes()
        response = AckResponse()
        exhausted: dict[TP, list[int]] = defaultdict(list)
        for lease, cursor in self._leases(group, lease_ids):
            tp = (lease.topic, lease.partition)
            settle = cursor.release(lease, now_ms) if release else cursor.nack(
                lease, now_ms + int(delay_s * 1000), reason)
            if settle is Settle.DONE:
                response.acked += 1
                changes.slots.add((tp, lease.offset))
                if not release:
                    self.metrics.nacks.labels(name, lease.topic).inc()
                    if cursor.slots[lease.offset].deliveries >= eff.max_deliveries:
                        exhausted[tp].append(lease.offset)
            elif settle is Settle.ALREADY_DONE:
                response.already_done += 1
            else:
                response.stale.append(str(lease))
        await self.writer.persist(group, changes)
        for tp, offsets in exhausted.items():
            response.dead_lettered += await self.dead_letters.dead_letter(group, tp, offsets)
        self.table.notify()
        return response
