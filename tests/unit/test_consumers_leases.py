"""The shared-mode cursor: leases, visibility timeout, nack, release, ack floor, dead-letter selection — no I/O."""

from __future__ import annotations

import pytest

from goqueue.consumers.leases import Cursor, LeaseId, Settle, Slot, SlotState
from goqueue.errors import InvalidRequest

pytestmark = pytest.mark.unit

VIS_MS = 30_000
MAX = 3


def lease(cursor: Cursor, offset: int) -> LeaseId:
    return cursor.lease_id("t", 0, cursor.slots[offset])


def deliver(cursor: Cursor, offsets: range, now_ms: int = 0, consumer: str = "c1") -> list[LeaseId]:
    return [cursor.lease_id("t", 0, cursor.deliver_new(o, consumer, now_ms + VIS_MS)) for o in offsets]


def test_ack_floor_is_the_lowest_unsettled_offset() -> None:
    cursor = Cursor.starting_at(10)
    leases = deliver(cursor, range(10, 15))
    assert (cursor.committed, cursor.next, cursor.pending) == (10, 15, 5)
    assert cursor.ack(leases[1]) is Settle.DONE
    assert cursor.committed == 10  # 10 is still leased: the floor cannot pass it
    assert cursor.ack(leases[0]) is Settle.DONE
    assert cursor.committed == 12
    for one in leases[2:]:
        cursor.ack(one)
    assert (cursor.committed, cursor.pending) == (15, 0)


def test_ack_is_idempotent_and_late_acks_are_honoured() -> None:
    cursor = Cursor.starting_at(0)
    (first,) = deliver(cursor, range(1))
    assert cursor.ack(first) is Settle.DONE
    assert cursor.ack(first) is Settle.ALREADY_DONE
    (second,) = deliver(cursor, range(1, 2))
    cursor.expire(VIS_MS + 1)  # the lease ran out: a slow consumer finished anyway
    assert cursor.ack(second) is Settle.DONE
    assert cursor.committed == 2


def test_visibility_timeout_expires_leases_only_at_the_deadline() -> None:
    cursor = Cursor.starting_at(0)
    deliver(cursor, range(3), now_ms=1000)
    assert cursor.expire(1000 + VIS_MS - 1) == []
    expired = cursor.expire(1000 + VIS_MS)
    assert [s.offset for s in expired] == [0, 1, 2]
    assert all(s.state is SlotState.WAITING and s.consumer is None for s in expired)
    assert cursor.due(1000 + VIS_MS, MAX, 10) == [0, 1, 2]
    assert cursor.leased() == 0
    assert cursor.committed == 0  # expired is not done


def test_redelivery_counts_and_a_stale_nack_changes_nothing() -> None:
    cursor = Cursor.starting_at(0)
    (old,) = deliver(cursor, range(1), consumer="slow")
    cursor.expire(VIS_MS)
    slot = cursor.redeliver(0, "fast", 2 * VIS_MS)
    assert slot is not None
    assert slot.deliveries == 2
    assert cursor.nack(old, 0) is Settle.STALE  # the slow consumer no longer holds it
    assert cursor.slots[0].state is SlotState.LEASED
    assert cursor.slots[0].consumer == "fast"


def test_nack_with_delay_defers_redelivery() -> None:
    cursor = Cursor.starting_at(0)
    (one,) = deliver(cursor, range(1))
    assert cursor.nack(one, not_before_ms=5000, reason="db down") is Settle.DONE
    assert cursor.due(4999, MAX, 10) == []
    assert cursor.due(5000, MAX, 10) == [0]
    assert cursor.next_due_ms(MAX) == 5000
    assert cursor.slots[0].reason == "db down"


def test_release_does_not_count_as_a_delivery() -> None:
    cursor = Cursor.starting_at(0)
    (one,) = deliver(cursor, range(1))
    assert cursor.release(one, 0) is Settle.DONE
    assert cursor.slots[0].deliveries == 0
    assert cursor.due(0, MAX, 10) == [0]
    assert cursor.redeliver(0, "c2", VIS_MS) is not None
    assert cursor.slots[0].deliveries == 1


def test_exhausted_messages_are_never_redelivered() -> None:
    cursor = Cursor.starting_at(0)
    deliver(cursor, range(2))
    for round_ in range(1, MAX):
        cursor.expire(round_ * VIS_MS)
        for offset in (0, 1):
            cursor.redeliver(offset, "c", (round_ + 1) * VIS_MS)
    cursor.ack(lease(cursor, 1))
    cursor.expire(MAX * VIS_MS)
    assert cursor.slots[0].deliveries == MAX
    assert cursor.due(MAX * VIS_MS, MAX, 10) == []
    assert cursor.exhausted(MAX) == [0]
    assert cursor.settle(0)  # dead-lettered: done
    assert (cursor.committed, cursor.pending) == (2, 0)


def test_reset_drops_leases_and_makes_old_lease_ids_stale() -> None:
    cursor = Cursor.starting_at(0)
    old = deliver(cursor, range(5))
    dropped = cursor.reset(0)
    assert len(dropped) == 5
    assert (cursor.committed, cursor.next, cursor.pending) == (0, 0, 0)
    new = deliver(cursor, range(1))
    assert cursor.ack(old[0]) is Settle.STALE  # same offset, earlier epoch: not this delivery
    assert cursor.ack(new[0]) is Settle.DONE


def test_skip_to_steps_over_gaps() -> None:
    cursor = Cursor.starting_at(0)
    assert cursor.skip_to(7)
    assert (cursor.committed, cursor.next) == (7, 7)
    assert not cursor.skip_to(3)
    (one,) = deliver(cursor, range(9, 10))  # 7 and 8 were compacted away
    assert cursor.committed == 9
    cursor.ack(one)
    assert cursor.committed == 10


def test_restore_ignores_slots_outside_the_window() -> None:
    cursor = Cursor(committed=5, next=8)
    for offset in (3, 5, 6, 9):
        cursor.restore_slot(Cursor.starting_at(0).deliver_new(offset, "c", 0))
    cursor.finish_restore()
    assert sorted(cursor.slots) == [5, 6]
    assert cursor.committed == 5


@pytest.mark.parametrize("text", ["", "t", "t/0/1/1", "t/x/1/1/0", "t/0/1/1/0/9", "/0/1/1/0", "t/-1/1/1/0",
                                  "t/0/-1/1/0", "t/0/1/-1/0", "t/0/1/1/-1"])
def test_malformed_lease_ids_are_invalid_requests(text: str) -> None:
    with pytest.raises(InvalidRequest):
        LeaseId.parse(text)


def test_lease_id_round_trip() -> None:
    lease_id = LeaseId("orders.v2", 3, 12345, 2, 1)
    assert LeaseId.parse(str(lease_id)) == lease_id


def test_a_cursor_record_carries_the_leases_no_write_carried_yet() -> None:
    cursor = Cursor.starting_at(0)
    deliver(cursor, range(2))      # request A: not written yet
    assert cursor.unwritten() == [0, 1]
    first = cursor.mark_written()  # request B writes the cursor: A's leases go with it
    deliver(cursor, range(2, 4))
    assert cursor.unwritten() == [2, 3]
    cursor.unmark_written(first)   # B's write failed: the next cursor record carries everything again
    assert cursor.unwritten() == [0, 1, 2, 3]
    cursor.mark_written()
    cursor.reset(10)
    assert cursor.unwritten() == []
    restored = Cursor(committed=5, next=8)
    assert restored.unwritten() == []
    assert restored.written == 8


def test_an_ack_above_the_floor_settles_once() -> None:
    cursor = Cursor.starting_at(0)
    leases = deliver(cursor, range(3))
    assert cursor.ack(leases[2]) is Settle.DONE
    assert cursor.ack(leases[2]) is Settle.ALREADY_DONE, "0 is still leased, so 2 is above the floor"
    assert (cursor.committed, cursor.pending) == (0, 2)


def test_a_nack_for_a_message_already_done_says_so_and_one_from_before_a_reset_is_stale() -> None:
    cursor = Cursor.starting_at(0)
    first, second = deliver(cursor, range(2))
    cursor.ack(first)
    assert cursor.nack(first, not_before_ms=0) is Settle.ALREADY_DONE
    assert cursor.release(first, now_ms=0) is Settle.ALREADY_DONE
    cursor.reset(5)
    assert cursor.nack(second, not_before_ms=0) is Settle.STALE
    assert cursor.nack(first, not_before_ms=0) is Settle.STALE


def test_a_nack_from_a_consumer_whose_lease_expired_does_not_move_the_redelivery() -> None:
    cursor = Cursor.starting_at(0)
    (late,) = deliver(cursor, range(1), now_ms=0)
    cursor.expire(VIS_MS)  # WAITING, deliverable at once, same delivery number as the late consumer's lease
    assert cursor.nack(late, not_before_ms=VIS_MS + 60_000) is Settle.STALE
    assert cursor.due(VIS_MS, MAX, 10) == [0]


def test_every_reset_makes_every_earlier_lease_id_stale_and_ids_stay_parseable() -> None:
    cursor = Cursor.starting_at(0)
    cursor.reset(0)
    (after_first_reset,) = deliver(cursor, range(1))
    cursor.reset(0)
    (after_second_reset,) = deliver(cursor, range(1))
    assert cursor.ack(after_first_reset) is Settle.STALE
    assert LeaseId.parse(str(after_second_reset)) == after_second_reset
    assert cursor.ack(after_second_reset) is Settle.DONE


def test_settling_tells_whether_the_committed_offset_moved() -> None:
    cursor = Cursor.starting_at(0)
    deliver(cursor, range(3))
    assert cursor.settle(1) is False, "0 is still pending"
    assert cursor.settle(1) is False, "settling twice is harmless"
    assert cursor.settle(0) is True
    assert cursor.committed == 2


def test_long_polls_wake_only_for_messages_that_will_be_redelivered() -> None:
    cursor = Cursor.starting_at(0)
    deliver(cursor, range(3), now_ms=0)  # leased until VIS_MS: not a redelivery time
    assert cursor.next_due_ms(MAX) is None
    for offset in (1, 2):
        cursor.nack(lease(cursor, offset), not_before_ms=5_000 + offset)
    for _ in range(MAX - 1):  # offset 1 runs out of deliveries: it is dead-lettered, not redelivered
        cursor.redeliver(1, "c1", 0)
        cursor.nack(lease(cursor, 1), not_before_ms=1_000)
    assert cursor.slots[1].deliveries == MAX
    assert cursor.next_due_ms(MAX) == 5_002


def test_a_replayed_lease_at_or_past_next_is_not_restored() -> None:
    cursor = Cursor(committed=3, next=5)
    for offset in (3, 4, 5):
        cursor.restore_slot(Slot(offset, 1, SlotState.LEASED, VIS_MS, "c1"))
    cursor.finish_restore()
    assert sorted(cursor.slots) == [3, 4]


def test_skipping_to_where_the_cursor_already_is_moves_nothing() -> None:
    cursor = Cursor.starting_at(4)
    assert cursor.skip_to(4) is False
    assert cursor.skip_to(6) is True
    assert (cursor.committed, cursor.next) == (6, 6)


def test_only_a_waiting_message_is_redelivered() -> None:
    cursor = Cursor.starting_at(0)
    deliver(cursor, range(1), consumer="c1")
    assert cursor.redeliver(0, "c2", VIS_MS) is None, "leased to c1: handing it to c2 too would deliver it twice"
    assert (cursor.slots[0].consumer, cursor.slots[0].deliveries) == ("c1", 1)
    assert cursor.redeliver(7, "c2", VIS_MS) is None
