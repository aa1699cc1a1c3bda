"""The gRPC client's idempotent produce: `http_producer.py`'s loop on asyncio (the same rules: `partitioner.py`,
`idempotence.py`, `delivery.py`), sending through a `ProduceTransport` (the `GrpcClient` that composes it).

An asyncio lock per partition keeps one request per partition in flight, so sequences reach the leader in order.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Protocol

from goqueue.client.delivery import DeliveryPolicy, call_retrying, partly_written
from goqueue.client.idempotence import ProducerSession
from goqueue.client.partitioner import PartitionCounts, plan_partitions
from goqueue.errors import GoQueueError, InvalidRequest, OutOfOrderSequence, PartitionNotFound
from goqueue.models import Acks, ProduceResponse, RecordOffset, TopicInfo
from goqueue.records import ProducerIdentity, RecordIn


class ProduceTransport(Protocol):
    """What the producer sends through (`GrpcClient` is one): so it depends on no client module."""

    timeout_s: float

    async def describe_topic(self, name: str, details: bool = True) -> TopicInfo:
        """The topic (`details=False`: its partition count and settings, at once); raises its error."""
        ...

    async def produce_once(self, topic: str, records: Sequence[RecordIn], partition: int, acks: Acks,
                           producer: ProducerIdentity, timeout_s: float) -> ProduceResponse:
        """One stamped produce call, not retried; raises its error."""
        ...


class GrpcProducer:
    def __init__(self, client: ProduceTransport, delivery: DeliveryPolicy) -> None:
        self.client = client
        self.delivery = delivery
        self.retries = 0  # resends, for reports
        self._rng = random.Random()
        self._session = ProducerSession()
        self._counts = PartitionCounts(self._rng)
        self._partition_locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def produce(self, topic: str, records: Sequence[RecordIn], partition: int | None,
                      acks: Acks) -> ProduceResponse:
        deadline = time.monotonic() + self.delivery.timeout_s
        offsets: list[RecordOffset | None] = [None] * len(records)
        duplicate = False
        written = 0
        for index, positions in (await self._plan(topic, records, partition, deadline)).items():
            try:
                answer = await self._deliver(topic, [records[i] for i in positions], index, acks, deadline)
            except GoQueueError as exc:
                raise partly_written(exc, written, len(records)) from exc
            for i, placed in zip(positions, answer.offsets, strict=True):
                offsets[i] = placed
            duplicate = duplicate or answer.duplicate
            written += len(positions)
        return ProduceResponse(topic=topic, offsets=[o for o in offsets if o is not None], duplicate=duplicate)

    async def _plan(self, topic: str, records: Sequence[RecordIn], partition: int | None,
                    deadline: float) -> dict[int, list[int]]:
        if not records:
            raise InvalidRequest("a produce request needs at least one record")
        keys = [r.key for r in records]
        own = [r.partition for r in records]
        sticky = self._counts.next_sticky(topic)
        try:
            return plan_partitions(topic, keys, own, partition, await self._partition_count(topic, deadline), sticky)
        except PartitionNotFound:  # maybe the topic grew since it was looked up
            return plan_partitions(topic, keys, own, partition,
                                   await self._partition_count(topic, deadline, fresh=True), sticky)

    async def _partition_count(self, topic: str, deadline: float, fresh: bool = False) -> int:
        cached = None if fresh else self._counts.cached(topic, time.monotonic())
        if cached is not None:
            return cached
        described = await call_retrying(lambda: self.client.describe_topic(topic, details=False), self.delivery,
                                        deadline, self._rng)
        self._counts.remember(topic, described.partitions, time.monotonic())
        return described.partitions

    async def _deliver(self, topic: str, records: list[RecordIn], partition: int, acks: Acks,
                       deadline: float) -> ProduceResponse:
        async with self._partition_locks.setdefault((topic, partition), asyncio.Lock()):
            attempt = 0
            while True:
                stamp = self._session.claim(topic, partition, len(records))
                try:
                    answer = await self.client.produce_once(
                        topic, records, partition, acks, ProducerIdentity(*stamp),
                        timeout_s=min(self.client.timeout_s, max(0.1, deadline - time.monotonic())))
                except GoQueueError as exc:
                    error = exc
                else:
                    self._session.written(topic, partition, len(records))
                    return answer
                if isinstance(error, OutOfOrderSequence):
                    self._session.abandon(topic, partition)  # a new epoch; then the batch is sent again
                delay = self.delivery.retry_delay(error, attempt, deadline - time.monotonic(), self._rng)
                if delay is None:
                    self._session.abandon(topic, partition)  # written or not: its sequences are never reused
                    raise self.delivery.final_error(error, attempt + 1) from error
                self.retries += 1
                await asyncio.sleep(delay)
                attempt += 1
