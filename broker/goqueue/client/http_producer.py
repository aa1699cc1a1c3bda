"""The HTTP client's idempotent produce: the loop around the rules of `partitioner.py` (which partition),
`idempotence.py` (what each request is stamped with) and `delivery.py` (when to send again, when to give up).

One call: plan the records' partitions (the partition count looked up through failures too), then deliver each
partition's records — stamped, sent once through the `ProduceTransport` (the `GoQueueClient` that composes this
producer), sent again after every retriable error until the call's delivery timeout — holding that partition's lock,
so a producer shared by threads still has one request per partition in flight and its sequences reach the leader in
order. `grpc_producer.py` is the asyncio twin.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Protocol

from goqueue.client.delivery import DeliveryPolicy, partly_written
from goqueue.client.idempotence import ProducerSession
from goqueue.client.partitioner import PartitionCounts, plan_partitions
from goqueue.errors import GoQueueError, InvalidRequest, OutOfOrderSequence, PartitionNotFound
from goqueue.models import ProduceRequest, ProduceResponse, RecordOffset, TopicInfo, decode_text


class ProduceTransport(Protocol):
    """What the producer sends through (`GoQueueClient` is one): so it depends on no client module."""

    timeout_s: float

    def describe_topic(self, name: str, details: bool = True) -> TopicInfo:
        """The topic (`details=False`: its partition count and settings, at once); raises its error."""
        ...

    def produce_once(self, topic: str, body: dict[str, Any], timeout_s: float) -> ProduceResponse:
        """One stamped produce request, not retried; raises its error."""
        ...


class HttpProducer:
    def __init__(self, client: ProduceTransport, delivery: DeliveryPolicy) -> None:
        self.client = client
        self.delivery = delivery
        self.retries = 0  # resends, for reports (the load tool's)
        self._rng = random.Random()
        self._session = ProducerSession()
        self._counts = PartitionCounts(self._rng)
        self._lock = threading.Lock()
        self._partition_locks: dict[tuple[str, int], threading.Lock] = {}

    def produce(self, topic: str, request: ProduceRequest) -> ProduceResponse:
        deadline = time.monotonic() + self.delivery.timeout_s
        offsets: list[RecordOffset | None] = [None] * len(request.records)
        duplicate = False
        written = 0
        for partition, indexes in self._plan(topic, request, deadline).items():
            part = request.model_copy(update={"records": [request.records[i] for i in indexes],
                                              "partition": partition})
            try:
                answer = self._deliver(topic, part, partition, deadline)
            except GoQueueError as exc:
                raise partly_written(exc, written, len(offsets)) from exc
            for i, placed in zip(indexes, answer.offsets, strict=True):
                offsets[i] = placed
            duplicate = duplicate or answer.duplicate
            written += len(indexes)
        return ProduceResponse(topic=topic, offsets=[o for o in offsets if o is not None], duplicate=duplicate)

    def _plan(self, topic: str, request: ProduceRequest, deadline: float) -> dict[int, list[int]]:
        try:
            keys = [decode_text(r.key, request.encoding, f"records.{i}.key") for i, r in enumerate(request.records)]
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc
        own = [r.partition for r in request.records]
        with self._lock:
            sticky = self._counts.next_sticky(topic)
        try:
            return plan_partitions(topic, keys, own, request.partition, self._partition_count(topic, deadline),
                                   sticky)
        except PartitionNotFound:  # maybe the topic grew since it was looked up
            return plan_partitions(topic, keys, own, request.partition,
                                   self._partition_count(topic, deadline, fresh=True), sticky)

    def _partition_count(self, topic: str, deadline: float, fresh: bool = False) -> int:
        cached = None if fresh else self._counts.cached(topic, time.monotonic())
        if cached is not None:
            return cached
        attempt = 0
        while True:
            try:
                count = self.client.describe_topic(topic, details=False).partitions
            except GoQueueError as exc:
                delay = self.delivery.retry_delay(exc, attempt, deadline - time.monotonic(), self._rng)
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1
                continue
            with self._lock:
                self._counts.remember(topic, count, time.monotonic())
            return count

    def _deliver(self, topic: str, part: ProduceRequest, partition: int, deadline: float) -> ProduceResponse:
        count = len(part.records)
        with self._lock:
            lock = self._partition_locks.setdefault((topic, partition), threading.Lock())
        with lock:
            attempt = 0
            while True:
                stamp = self._session.claim(topic, partition, count)
                body = part.model_copy(update={"producer_id": stamp.producer_id, "producer_epoch": stamp.epoch,
                                               "base_sequence": stamp.base_sequence}).model_dump(
                    by_alias=True, exclude_none=True, mode="json")
                try:
                    answer = self.client.produce_once(
                        topic, body, timeout_s=min(self.client.timeout_s, max(0.1, deadline - time.monotonic())))
                except GoQueueError as exc:
                    error = exc
                else:
                    self._session.written(topic, partition, count)
                    return answer
                if isinstance(error, OutOfOrderSequence):
                    self._session.abandon(topic, partition)  # a new epoch; then the batch is sent again
                delay = self.delivery.retry_delay(error, attempt, deadline - time.monotonic(), self._rng)
                if delay is None:
                    self._session.abandon(topic, partition)  # written or not: its sequences are never reused
                    raise self.delivery.final_error(error, attempt + 1) from error
                with self._lock:
                    self.retries += 1
                time.sleep(delay)
                attempt += 1
