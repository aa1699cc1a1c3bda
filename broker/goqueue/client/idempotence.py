"""An idempotent producer's identity and sequence numbers (Kafka's `enable.idempotence`, on by default).

Each client is one producer: a random 63-bit producer id drawn when it is made, with no round trip to allocate it
(two producers of a partition share one with odds of about n²/2⁶⁴: 5·10⁻¹⁰ for the 100,000 producers a partition
keeps at most). Every produce request goes to one
partition and carries (producer id, epoch, base sequence); the partition's leader keeps the last five batches of
each producer, and its followers rebuild the same table from the replicated batches (`storage/producers.py`), so a
resend of a batch already written — to the old leader before a failover, or whose answer was lost — is answered
with its original offsets instead of being written again. Hence the clients retry produce freely.

Sequences are per partition, and a partition takes one request of a producer at a time (the clients hold a lock
per partition while delivering), so they reach the leader in order. A request's sequence is taken when it is sent
(`claim`) and passed only once the broker answered it (`written`); a resend reuses it.

A delivery given up without an answer (the delivery timeout passed) may or may not have been written. The next
request must not reuse its sequence (a late copy of the abandoned one would then be taken for it, or it for the
copy), so `abandon` moves the partition to a new epoch with sequences from 0: the leader accepts any sequence of a
newer epoch and fences older ones. OUT_OF_ORDER_SEQUENCE (the leader has not seen this producer's previous batch —
e.g. it was written with acks=1 to a leader that died before replicating it) is answered the same way, then the
batch is resent. Epochs are 16-bit in the batch header; past the last one the partition gets a new producer id.

Pure apart from the random source; not thread-safe on its own (callers hold the partition's lock).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple

MAX_PRODUCER_ID = 2**63 - 2   # int64 in the batch header, -1 meaning "not idempotent"
MAX_EPOCH = 2**15 - 1         # int16 in the batch header
MAX_SEQUENCE = 2**31 - 1      # int32 in the batch header


class ProducerStamp(NamedTuple):
    """What one produce request carries: the broker's `producerId`, `producerEpoch`, `baseSequence`."""

    producer_id: int
    epoch: int
    base_sequence: int


@dataclass
class _Partition:
    producer_id: int
    epoch: int = 0
    next_sequence: int = 0


class ProducerSession:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.SystemRandom()
        self.producer_id = self._new_id()
        self._partitions: dict[tuple[str, int], _Partition] = {}

    def _new_id(self) -> int:
        return self._rng.randint(0, MAX_PRODUCER_ID)

    def _state(self, topic: str, partition: int) -> _Partition:
        return self._partitions.setdefault((topic, partition), _Partition(self.producer_id))

    def claim(self, topic: str, partition: int, count: int) -> ProducerStamp:
        """The stamp of the next request of `count` records to `topic`/`partition` (a resend claims again and
        gets the same stamp until `written` or `abandon`)."""
        assert count > 0
        state = self._state(topic, partition)
        if state.next_sequence + count - 1 > MAX_SEQUENCE:
            self._next_epoch(state)  # sequences would overflow: a new epoch starts them at 0
        return ProducerStamp(state.producer_id, state.epoch, state.next_sequence)

    def written(self, topic: str, partition: int, count: int) -> None:
        """The broker answered the claimed request: its sequences are used."""
        self._state(topic, partition).next_sequence += count

    def abandon(self, topic: str, partition: int) -> None:
        """The claimed request may or may not have been written: never reuse its sequences."""
        self._next_epoch(self._state(topic, partition))

    def _next_epoch(self, state: _Partition) -> None:
        if state.epoch >= MAX_EPOCH:
            state.producer_id, state.epoch = self._new_id(), 0
        else:
            state.epoch += 1
        state.next_sequence = 0
