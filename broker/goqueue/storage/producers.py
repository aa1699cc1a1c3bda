"""Idempotent-producer state of one partition: which sequence numbers each producer has written.

A producer stamps each batch with (producer id, epoch, base sequence). A retry of a batch that was written (the
acknowledgement was lost) is recognised by its sequence range and answered with the original offsets instead of
being written twice; a gap in the sequence is refused. The last `RECENT_BATCHES` batches per producer are kept, as
Kafka does, so a client with several requests in flight can retry any of them.

After a crash the state is rebuilt from the batch headers of the newest segments (`PartitionLog` decides how many):
a producer not seen there is treated as new and its next sequence accepted, so a lost entry can cost a duplicate
only for a retry that spans a segment roll, never a refused write.

Only the writer thread calls this.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from goqueue.errors import OutOfOrderSequence
from goqueue.storage.batch import NO_PRODUCER, BatchHeader

RECENT_BATCHES = 5
MAX_PRODUCERS = 100_000  # bound the table: the oldest idle producer is forgotten first


@dataclass
class _Producer:
    epoch: int
    recent: deque[tuple[int, int, int, int]] = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES))
    # (first sequence, last sequence, base offset, last offset)


class ProducerTable:
    def __init__(self) -> None:
        self._producers: dict[int, _Producer] = {}

    def check(self, header: BatchHeader) -> tuple[int, int] | None:
        """The (base, last) offsets of an already-written duplicate, None for a new batch; raises on a gap."""
        if header.producer_id == NO_PRODUCER:
            return None
        producer = self._producers.get(header.producer_id)
        if producer is None or header.producer_epoch > producer.epoch:
            return None  # new producer or new epoch: any starting sequence is accepted
        if header.producer_epoch < producer.epoch:
            raise OutOfOrderSequence(
                f"producer {header.producer_id} epoch {header.producer_epoch} is fenced by epoch {producer.epoch}")
        for first_seq, last_seq, base_offset, last_offset in producer.recent:
            if first_seq == header.base_sequence and last_seq == header.last_sequence:
                return base_offset, last_offset
        expected = producer.recent[-1][1] + 1 if producer.recent else header.base_sequence
        if header.base_sequence != expected:
            raise OutOfOrderSequence(
                f"producer {header.producer_id} sent sequence {header.base_sequence}, expected {expected}",
                expected_sequence=expected)
        return None

    def record(self, header: BatchHeader) -> None:
        """Remember a written batch (`header` carries the stamped base offset)."""
        if header.producer_id == NO_PRODUCER:
            return
        producer = self._producers.pop(header.producer_id, None)  # re-insert: dict order = least recently used
        if producer is None or header.producer_epoch > producer.epoch:
            producer = _Producer(epoch=header.producer_epoch)
        producer.recent.append((header.base_sequence, header.last_sequence, header.base_offset, header.last_offset))
        self._producers[header.producer_id] = producer
        if len(self._producers) > MAX_PRODUCERS:
            del self._producers[next(iter(self._producers))]

    def forget_from(self, offset: int) -> None:
        """Drop entries of batches at or after `offset` (the log was truncated)."""
        for pid in list(self._producers):
            recent = self._producers[pid].recent
            while recent and recent[-1][2] >= offset:
                recent.pop()
            if not recent:
                del self._producers[pid]

    def __len__(self) -> int:
        return len(self._producers)
