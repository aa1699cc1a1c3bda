"""What the batching producer (`producer.py`) sends through: one client-built record batch to one partition,
sent once — the producer's delivery loop decides about resending. `grpc_batch_transport.py` (gRPC `ProduceBatch`)
and `http_batch_transport.py` (HTTP binary batches) are the two; a test gives the producer a fake one.
"""

from __future__ import annotations

from typing import Protocol

from goqueue.models import Acks


class BatchTransport(Protocol):
    timeout_s: float  # the longest wait for one answer

    async def partition_count(self, topic: str) -> int:
        """The topic's partition count, from any broker; raises its error (TOPIC_NOT_FOUND, UNAVAILABLE …)."""
        ...

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        """Send one record batch (`goqueue.storage.batch.build_batch`) once; its base offset (-1 with acks=0).
        Raises the `GoQueueError` it was answered with, `Unavailable` when no broker took or answered it."""
        ...

    async def close(self) -> None:
        ...
