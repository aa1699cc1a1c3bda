"""One partition's records in the batching producer: those waiting for the next batch, in send order, and the
batch in flight (one per partition: the idempotent sequences must reach the leader in order).

When the next batch goes (Kafka's accumulator rules): at once when it is full (`batch_bytes` or `batch_records`),
when the producer is flushing or closing, or when senders wait for buffer room; otherwise `linger_s` after its
oldest record was sent. Records sent while a batch is in flight wait behind it and go together in the next one, so
batches grow with the load even with no linger at all.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from goqueue.records import RecordIn


class Acknowledgement(NamedTuple):
    """Where a sent record was written (offset -1 with acks=0: not known)."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Pending:
    record: RecordIn
    future: asyncio.Future[Acknowledgement]
    size: int            # bytes it holds of the producer's buffer
    created_s: float     # time.monotonic() of its send: linger and delivery timeout count from here
    timestamp_ms: int    # its record timestamp: the caller's, else the send's wall-clock time


class PartitionQueue:
    def __init__(self) -> None:
        self.waiting: deque[Pending] = deque()
        self.waiting_bytes = 0
        self.in_flight: list[Pending] = []
        self.wakeup = asyncio.Event()  # set by every add: the partition's sender looks again

    def add(self, pending: Pending) -> None:
        self.waiting.append(pending)
        self.waiting_bytes += pending.size
        self.wakeup.set()

    def wait_s(self, now_s: float, linger_s: float, batch_bytes: int, batch_records: int, urgent: bool) -> float | None:
        """Seconds until the next batch may go (0: now), None while nothing waits."""
        if not self.waiting:
            return None
        if urgent or self.waiting_bytes >= batch_bytes or len(self.waiting) >= batch_records:
            return 0.0
        return max(0.0, self.waiting[0].created_s + linger_s - now_s)

    def take(self, batch_bytes: int, batch_records: int) -> list[Pending]:
        """The next batch, oldest first: at least one record, then as many as fit `batch_bytes` and
        `batch_records`; it is in flight until the next `take`."""
        first = self.waiting.popleft()
        batch, size = [first], first.size
        while self.waiting and len(batch) < batch_records and size + self.waiting[0].size <= batch_bytes:
            pending = self.waiting.popleft()
            batch.append(pending)
            size += pending.size
        self.waiting_bytes -= size
        self.in_flight = batch
        return batch

    def outstanding(self) -> list[asyncio.Future[Acknowledgement]]:
        """The futures of every record sent here and not yet answered (what a flush waits for)."""
        return [p.future for p in (*self.in_flight, *self.waiting) if not p.future.done()]
