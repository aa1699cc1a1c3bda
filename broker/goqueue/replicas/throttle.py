"""The replication throttle of reassignments (Kafka's follower-side `ReplicationQuotaManager`): a broker fetches
for the replicas it is adding at most `rate` bytes/s on average, whatever the number of leaders it copies from.

A fetch's size is known only once it is answered, so the bucket lends: a fetch is allowed while the bucket is not
in debt, its bytes are spent afterwards, and the debt (at most one fetch) is repaid at `rate` before the next
throttled fetch. Unused time earns no credit, so over any stretch of T seconds the throttled bytes stay below
rate * T plus one fetch (`replication.fetchMaxBytes`, 8 MiB by default: a partition smaller than that may be copied
by the first fetch at once). Replicas that are not being added are never held back: the fetch's size is shared by
all the partitions it asks for, so it is not cut to the throttle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from goqueue.replication.view import PartitionView

T = TypeVar("T")


class ThrottleBucket:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rate: int | None = None  # bytes/s; None: unthrottled
        self._balance = 0.0  # bytes; negative: in debt
        self._stamp = clock()

    def set_rate(self, rate: int | None) -> None:
        self._repay()
        if rate != self.rate:
            self.rate = rate
            if rate is None:
                self._balance = 0.0

    def _repay(self) -> None:
        now = self.clock()
        if self.rate is not None:
            self._balance = min(0.0, self._balance + (now - self._stamp) * self.rate)
        self._stamp = now

    def allows(self) -> bool:
        self._repay()
        return self.rate is None or self._balance >= 0

    def spend(self, size: int) -> None:
        self._repay()
        if self.rate is not None:
            self._balance -= size

    def wait_s(self) -> float:
        """Until the next throttled fetch is allowed."""
        self._repay()
        return 0.0 if self.rate is None else -self._balance / self.rate


def fetchable(partitions: Sequence[T], throttled: Callable[[T], bool], bucket: ThrottleBucket) -> list[T]:
    """The partitions one fetch may ask for: all while the bucket allows, else only those not throttled."""
    if bucket.allows():
        return list(partitions)
    return [p for p in partitions if not throttled(p)]


def copy_is_throttled(state: PartitionView | None, broker_id: int) -> bool:
    """Is `broker_id`'s replica a new one of a reassignment still copying (so its fetches count against the
    throttle)? Once in the ISR it is not: every acks=all write then waits for it, and a throttled in-sync replica
    would slow every producer and fall out of the ISR again (Kafka exempts in-sync replicas too)."""
    return state is not None and broker_id in state.get("adding_replicas", ()) and broker_id not in state["isr"]
