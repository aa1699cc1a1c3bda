"""One group's position in one partition: the committed offset and, in shared mode, the leases above it.

A pure state machine: no I/O, no clock (callers pass `now_ms`). The coordinator turns each change into records of
the `__consumer_state` topic (`state_store.py`).

Shared mode (SQS-like) keeps, per partition, a window of offsets::

    committed (ack floor)          next (first offset never delivered)
        │  slots: LEASED / WAITING, or done  │
    ────┴────────────────────────────────────┴──── log

Every offset in [committed, next) is either done (acked or dead-lettered; no slot) or has a `Slot`:

    new ──deliver──▶ LEASED ──ack──▶ done
                       │ ▲ deadline passes (visibility timeout) or nack(delay)
                       ▼ │ redeliver when deadline ≤ now and deliveries < maxDeliveries
                     WAITING ──deliveries ≥ maxDeliveries──▶ dead-lettered (done)

`committed` is the smallest offset with a slot, or `next` when there is none: a restart resumes there, and
everything below it is done. A replay likewise takes every offset in [committed, next) without a lease record as
done, so a cursor record is never written before the leases it passes: `unwritten` names the leases made since the
last cursor record was handed to the state topic (another request's, not persisted yet), and the coordinator writes
them with it. Lease ids carry the delivery number and the cursor's reset epoch, so a nack from a
consumer whose lease already expired and was handed to another consumer changes nothing (it is *stale*); an ack
is honoured however late, since the message was processed.

Ordered mode (Kafka-like) uses only `committed` (members track their own read position).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import StrEnum

from goqueue.errors import InvalidRequest


class SlotState(StrEnum):
    LEASED = "l"   # delivered to `consumer`, until `deadline_ms`
    WAITING = "w"  # to be redelivered from `deadline_ms` on (lease expired, nacked or released)


class Settle(StrEnum):
    DONE = "done"                  # this request settled it
    ALREADY_DONE = "already_done"  # acked or dead-lettered before
    STALE = "stale"                # the lease is no longer held (nack / release only)


@dataclass
class Slot:
    offset: int
    deliveries: int
    state: SlotState
    deadline_ms: int
    consumer: str | None = None
    reason: str | None = None
    dead_lettering: bool = False  # a dead-letter write is in progress: never redeliver it meanwhile


@dataclass(frozen=True)
class LeaseId:
    """`topic/partition/offset/delivery/epoch`: topic names cannot contain '/', so parsing is unambiguous."""

    topic: str
    partition: int
    offset: int
    delivery: int
    epoch: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}/{self.delivery}/{self.epoch}"

    @classmethod
    def parse(cls, text: str) -> LeaseId:
        parts = text.split("/")
        try:
            if len(parts) != 5 or not parts[0]:
                raise ValueError
            partition, offset, delivery, epoch = (int(p) for p in parts[1:])
        except ValueError:
            raise InvalidRequest(f"{text!r} is not a lease id (topic/partition/offset/delivery/epoch)") from None
        if min(partition, offset, delivery, epoch) < 0:
            raise InvalidRequest(f"{text!r} is not a lease id: numbers cannot be negative")
        return cls(parts[0], partition, offset, delivery, epoch)


@dataclass
class Cursor:
    """A group's state in one partition."""

    committed: int
    next: int
    epoch: int = 0
    slots: dict[int, Slot] = field(default_factory=dict)
    _heap: list[int] = field(default_factory=list, repr=False)
    # `next` of the newest cursor record handed to the state topic
    written: int = field(default=-1, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.written < 0:
            self.written = self.next  # built from a record (replay), or a new cursor written with its creation

    @classmethod
    def starting_at(cls, offset: int, epoch: int = 0) -> Cursor:
        return cls(committed=offset, next=offset, epoch=epoch)

    # -- queries ---------------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Unsettled messages (leased or waiting): what counts against the group's inflight capacity."""
        return len(self.slots)

    def leased(self) -> int:
        return sum(1 for s in self.slots.values() if s.state is SlotState.LEASED)

    def due(self, now_ms: int, max_deliveries: int, limit: int) -> list[int]:
        """WAITING offsets that may be redelivered now, lowest first."""
        ready = sorted(o for o, s in self.slots.items() if s.state is SlotState.WAITING and s.deadline_ms <= now_ms
                       and s.deliveries < max_deliveries and not s.dead_lettering)
        return ready[:limit]

    def next_due_ms(self, max_deliveries: int) -> int | None:
        """When the earliest WAITING slot becomes deliverable (long-polls wake then)."""
        times = [s.deadline_ms for s in self.slots.values()
                 if s.state is SlotState.WAITING and s.deliveries < max_deliveries]
        return min(times, default=None)

    def exhausted(self, max_deliveries: int) -> list[int]:
        """WAITING offsets delivered `max_deliveries` times: they go to the dead-letter topic."""
        return sorted(o for o, s in self.slots.items() if s.state is SlotState.WAITING
                      and s.deliveries >= max_deliveries and not s.dead_lettering)

    def unwritten(self) -> list[int]:
        """Leases made since the newest cursor record was handed to the state topic: a cursor record must carry
        them, else a replay that finds no lease record below its `next` skips them."""
        return sorted(o for o in self.slots if o >= self.written)

    def mark_written(self) -> int:
        """A cursor record with the current `next` goes to the state topic now; returns the mark to restore if that
        write fails."""
        previous, self.written = self.written, self.next
        return previous

    def unmark_written(self, previous: int) -> None:
        """The write did not happen (or may not have): the next cursor record carries those leases again."""
        self.written = min(self.written, previous)

    def lease_id(self, topic: str, partition: int, slot: Slot) -> LeaseId:
        return LeaseId(topic, partition, slot.offset, slot.deliveries, self.epoch)

    # -- transitions -----------------------------------------------------------------------------------------

    def deliver_new(self, offset: int, consumer: str, deadline_ms: int) -> Slot:
        """Lease a record never delivered before; offsets skipped between `next` and it were gaps (done)."""
        assert offset >= self.next, f"offset {offset} was delivered before (next is {self.next})"
        slot = Slot(offset, 1, SlotState.LEASED, deadline_ms, consumer)
        self.slots[offset] = slot
        heapq.heappush(self._heap, offset)
        self.next = offset + 1
        self._advance_floor()
        return slot

    def skip_to(self, offset: int) -> bool:
        """Move `next` past offsets that hold no record (compaction gaps, retention); True if it moved."""
        if offset <= self.next:
            return False
        self.next = offset
        self._advance_floor()
        return True

    def redeliver(self, offset: int, consumer: str, deadline_ms: int) -> Slot | None:
        slot = self.slots.get(offset)
        if slot is None or slot.state is not SlotState.WAITING or slot.dead_lettering:
            return None
        slot.state, slot.consumer, slot.deadline_ms = SlotState.LEASED, consumer, deadline_ms
        slot.deliveries += 1
        return slot

    def expire(self, now_ms: int) -> list[Slot]:
        """Leases past their deadline become WAITING, deliverable at once."""
        expired = []
        for slot in self.slots.values():
            if slot.state is SlotState.LEASED and slot.deadline_ms <= now_ms:
                slot.state, slot.consumer, slot.deadline_ms = SlotState.WAITING, None, now_ms
                expired.append(slot)
        return expired

    def ack(self, lease: LeaseId) -> Settle:
        if lease.epoch != self.epoch:
            return Settle.STALE
        if lease.offset < self.committed or lease.offset not in self.slots:
            return Settle.ALREADY_DONE
        self.settle(lease.offset)
        return Settle.DONE

    def nack(self, lease: LeaseId, not_before_ms: int, reason: str | None = None) -> Settle:
        slot = self._held(lease)
        if slot is None:
            return Settle.ALREADY_DONE if lease.offset not in self.slots and lease.epoch == self.epoch \
                else Settle.STALE
        slot.state, slot.consumer, slot.deadline_ms, slot.reason = SlotState.WAITING, None, not_before_ms, reason
        return Settle.DONE

    def release(self, lease: LeaseId, now_ms: int) -> Settle:
        """Give a lease back unprocessed: it does not count as a delivery."""
        settle = self.nack(lease, now_ms)
        if settle is Settle.DONE:
            self.slots[lease.offset].deliveries -= 1
        return settle

    def settle(self, offset: int) -> bool:
        """The message is done (acked or dead-lettered); True if the committed offset moved."""
        before = self.committed
        self.slots.pop(offset, None)
        self._advance_floor()
        return self.committed != before

    def commit(self, offset: int) -> None:
        """Ordered mode: the member processed everything below `offset`."""
        assert not self.slots, "ordered groups hold no leases"
        self.committed = self.next = self.written = offset

    def reset(self, offset: int) -> list[Slot]:
        """Move to `offset`, dropping every lease (their ids become stale); returns the dropped slots."""
        dropped = list(self.slots.values())
        self.slots.clear()
        self._heap.clear()
        self.committed = self.next = self.written = offset
        self.epoch += 1
        return dropped

    def restore_slot(self, slot: Slot) -> None:
        """Replay: a slot read back from the state topic."""
        if self.committed <= slot.offset < self.next:
            self.slots[slot.offset] = slot
            heapq.heappush(self._heap, slot.offset)

    def finish_restore(self) -> None:
        self._advance_floor()

    # -- internals -------------------------------------------------------------------------------------------

    def _held(self, lease: LeaseId) -> Slot | None:
        slot = self.slots.get(lease.offset)
        if (slot is None or lease.epoch != self.epoch or slot.state is not SlotState.LEASED
                or slot.deliveries != lease.delivery):
            return None
        return slot

    def _advance_floor(self) -> None:
        while self._heap and self._heap[0] not in self.slots:
            heapq.heappop(self._heap)
        self.committed = self._heap[0] if self._heap else self.next

