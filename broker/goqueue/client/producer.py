"""The batching producer (Kafka's `KafkaProducer`, on asyncio): `send` returns an awaitable acknowledgement at once,
and the records of every caller bound for one partition go to the broker together, as one client-built batch.

    producer = Producer(GrpcBatchTransport("broker:9000"))
    ack = await (await producer.send("orders", RecordIn(b"k", b"v", [])))    # or: await producer.send_and_wait(…)
    await producer.close()                                                  # flushes first

* **Batching** (`producer_queue.py`): per partition, one batch in flight; what is sent meanwhile waits and goes in
  the next batch, up to `batch_bytes` (`batch.size`) and `batch_records`; `linger_s` (`linger.ms`) holds a batch
  that is not full that long after its first record, for fewer, larger requests at a low rate. The default is no
  linger: with one batch in flight per partition, records accumulate behind it anyway.
* **Back-pressure** (`byte_budget.py`): `send` waits while sent-but-unanswered records hold `buffer_bytes`
  (`buffer.memory`), so a slow broker slows its senders; lingering batches then go at once.
* **Partitions** (`partitioner.py`): a record's own partition, else its key's (the broker's rule), else keyless
  records stick to one partition until a batch's worth (`batch_bytes` or `batch_records`) went there, then move to
  the next (Kafka's uniform sticky partitioner, KIP-794).
* **Idempotent delivery** (`idempotence.py`, `delivery.py`), as the other clients: each batch is stamped with the
  producer id, the partition's epoch and its first record's sequence, and resent after every retriable error
  until the delivery timeout, counted from the oldest record's `send`; a resend of a written batch is answered
  with its first offsets, so each record is written once, in order per partition. Not with acks=0: sent once.
* **Errors**: a batch that fails fails exactly its own records' futures; later batches are sent as usual (the
  partition moves to a new epoch first, `idempotence.py`). `flush()` waits until every record sent before it is
  answered or failed; it raises nothing (the futures carry the errors). `close()` refuses new sends, flushes and
  closes the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from goqueue.client.batch_transport import BatchTransport
from goqueue.client.byte_budget import ByteBudget
from goqueue.client.delivery import DeliveryPolicy, call_retrying
from goqueue.client.idempotence import ProducerSession, ProducerStamp
from goqueue.client.partitioner import PartitionCounts
from goqueue.client.producer_queue import Acknowledgement, PartitionQueue, Pending
from goqueue.errors import GoQueueError, OutOfOrderSequence, PartitionNotFound, RecordTooLarge
from goqueue.limits import MAX_RECORDS_PER_REQUEST
from goqueue.models import Acks
from goqueue.partitioning import partition_for_key
from goqueue.records import RecordIn
from goqueue.storage.batch import NO_PRODUCER, build_batch

RECORD_OVERHEAD_BYTES = 16  # a record's framing in a batch, beside its key, value and headers
UNSTAMPED = ProducerStamp(NO_PRODUCER, 0, -1)


class ProducerClosed(RuntimeError):
    """`send` after `close()`."""


@dataclass(frozen=True)
class ProducerSettings:
    linger_s: float = 0.0
    batch_bytes: int = 16_384                  # Kafka's batch.size
    batch_records: int = MAX_RECORDS_PER_REQUEST
    buffer_bytes: int = 32 * 2**20             # Kafka's buffer.memory
    acks: Acks = Acks.ALL
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)  # delivery timeout, retry back-off

    def __post_init__(self) -> None:
        if self.linger_s < 0 or self.batch_bytes < 1 or not 1 <= self.batch_records <= MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"linger_s >= 0, batch_bytes >= 1, 1 <= batch_records <= {MAX_RECORDS_PER_REQUEST}")


def record_size(record: RecordIn) -> int:
    """The bytes a record holds of the producer's buffer (and counts towards `batch_bytes`)."""
    return (RECORD_OVERHEAD_BYTES + len(record.key or b"") + len(record.value or b"")
            + sum(len(name) + len(value) for name, value in record.headers))


class Producer:
    def __init__(self, transport: BatchTransport, settings: ProducerSettings | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.transport = transport
        self.settings = settings or ProducerSettings()
        self.retries = 0  # resends, for reports
        self._delivery = self.settings.delivery
        self._rng = rng or random.Random()
        self._session = ProducerSession(self._rng)
        self._counts = PartitionCounts(self._rng)
        self._lookups: dict[str, asyncio.Task[int]] = {}
        self._sticky: dict[str, tuple[int, int, int]] = {}  # topic → keyless records' partition, bytes, records
        self._budget = ByteBudget(self.settings.buffer_bytes)
        self._queues: dict[tuple[str, int], PartitionQueue] = {}
        self._senders: list[asyncio.Task[None]] = []
        self._flushing = 0
        self._closed = False

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def send(self, topic: str, record: RecordIn) -> asyncio.Future[Acknowledgement]:
        """Queue `record` for `topic` (waiting for buffer room first); the future is its acknowledgement, or the
        error of the batch it went in. Raises at once only for a record that can never be sent: larger than the
        buffer, a partition the topic does not have, a topic that does not exist."""
        if self._closed:
            raise ProducerClosed("the producer is closed")
        size = record_size(record)
        if size > self._budget.limit:
            raise RecordTooLarge(f"a record of {size} bytes does not fit the producer's buffer "
                                 f"({self._budget.limit} bytes)")
        partition = await self._partition(topic, record, size)
        if not self._budget.fits(size):  # the buffer is full: lingering batches go now (Kafka does the same)
            for queue in self._queues.values():
                queue.wakeup.set()
        await self._budget.acquire(size)
        if self._closed:  # closed while this send waited for room
            self._budget.release(size)
            raise ProducerClosed("the producer is closed")
        future: asyncio.Future[Acknowledgement] = asyncio.get_running_loop().create_future()
        timestamp_ms = record.timestamp_ms if record.timestamp_ms is not None else time.time_ns() // 1_000_000
        self._queue(topic, partition).add(Pending(record, future, size, time.monotonic(), timestamp_ms))
        return future

    async def send_and_wait(self, topic: str, record: RecordIn) -> Acknowledgement:
        return await (await self.send(topic, record))

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged or failed (linger is skipped meanwhile)."""
        self._flushing += 1
        try:
            for queue in self._queues.values():
                queue.wakeup.set()
            outstanding = [f for queue in self._queues.values() for f in queue.outstanding()]
            if outstanding:
                await asyncio.wait(outstanding)
        finally:
            self._flushing -= 1

    async def close(self) -> None:
        """Refuse new sends, deliver (or fail) what was sent, stop, and close the transport."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush()
        finally:
            for task in self._senders:
                task.cancel()
            await asyncio.gather(*self._senders, *self._lookups.values(), return_exceptions=True)
            await self.transport.close()

    # -- partitions --------------------------------------------------------------------------------------------

    async def _partition(self, topic: str, record: RecordIn, size: int) -> int:
        count = await self._partition_count(topic)
        target = self._choose(topic, record, size, count)
        if not 0 <= target < count:  # maybe the topic grew since it was looked up
            count = await self._partition_count(topic, fresh=True)
            target = self._choose(topic, record, size, count)
            if not 0 <= target < count:
                raise PartitionNotFound(f"topic {topic!r} has partitions 0..{count - 1}, not {target}",
                                        topic=topic, partition=target)
        return target

    def _choose(self, topic: str, record: RecordIn, size: int, count: int) -> int:
        if record.partition is not None:
            return record.partition
        if record.key is not None:
            return partition_for_key(record.key, count)
        sticky = self._sticky.get(topic)  # a random start only for a topic's first keyless record, not every one's
        partition, sent_bytes, sent_records = sticky if sticky is not None else (self._rng.randrange(count), 0, 0)
        if sent_bytes >= self.settings.batch_bytes or sent_records >= self.settings.batch_records:
            partition, sent_bytes, sent_records = partition + 1, 0, 0
        partition %= count
        self._sticky[topic] = (partition, sent_bytes + size, sent_records + 1)
        return partition

    async def _partition_count(self, topic: str, fresh: bool = False) -> int:
        cached = None if fresh else self._counts.cached(topic, time.monotonic())
        if cached is not None:
            return cached
        lookup = self._lookups.get(topic)
        if lookup is None:  # one lookup per topic, however many senders ask at once
            lookup = self._lookups[topic] = asyncio.create_task(self._look_up(topic))
            lookup.add_done_callback(lambda _: self._lookups.pop(topic, None))
        return await asyncio.shield(lookup)

    async def _look_up(self, topic: str) -> int:
        deadline = time.monotonic() + self._delivery.timeout_s
        count = await call_retrying(lambda: self.transport.partition_count(topic), self._delivery, deadline, self._rng)
        self._counts.remember(topic, count, time.monotonic())
        return count

    # -- sending -----------------------------------------------------------------------------------------------

    def _queue(self, topic: str, partition: int) -> PartitionQueue:
        queue = self._queues.get((topic, partition))
        if queue is None:
            queue = self._queues[(topic, partition)] = PartitionQueue()
            self._senders.append(asyncio.create_task(self._send_loop(topic, partition, queue)))
        return queue

    async def _send_loop(self, topic: str, partition: int, queue: PartitionQueue) -> None:
        settings = self.settings
        while True:
            urgent = self._flushing > 0 or self._closed or self._budget.waiting > 0
            wait_s = queue.wait_s(time.monotonic(), settings.linger_s, settings.batch_bytes, settings.batch_records,
                                  urgent)
            if wait_s != 0.0:
                queue.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    # Not wait_for: on Python 3.11 it swallows a cancellation that lands as the wait ends.
                    async with asyncio.timeout(wait_s):
                        await queue.wakeup.wait()
                continue
            batch = queue.take(settings.batch_bytes, settings.batch_records)
            try:
                await self._deliver(topic, partition, batch)
            except Exception as exc:  # anything unforeseen fails this batch, never the partition's later ones
                _settle(batch, error=exc)
            finally:
                queue.in_flight = []
                self._budget.release(sum(p.size for p in batch))
            # Let the senders this answer woke send again before the next batch is taken: else the records that
            # waited and those just answered go as two half batches, one behind the other, for good.
            await asyncio.sleep(0)

    async def _deliver(self, topic: str, partition: int, batch: list[Pending]) -> None:
        """Send `batch` until it is written or given up; settles its futures either way."""
        idempotent = self.settings.acks is not Acks.NONE
        rows = [(p.record.key, p.record.value, p.record.headers) for p in batch]
        timestamps = [p.timestamp_ms for p in batch]
        deadline = batch[0].created_s + self._delivery.timeout_s
        built_for, body, attempt = None, b"", 0
        while True:
            stamp = self._session.claim(topic, partition, len(batch)) if idempotent else UNSTAMPED
            if stamp != built_for:  # the first attempt, or a new epoch: the batch carries its stamp
                body = bytes(build_batch(rows, timestamps[0], timestamps_ms=timestamps, producer_id=stamp.producer_id,
                                         producer_epoch=stamp.epoch, base_sequence=stamp.base_sequence))
                built_for = stamp
            try:
                base_offset = await self.transport.send_batch(
                    topic, partition, body, self.settings.acks,
                    timeout_s=min(self.transport.timeout_s, max(0.1, deadline - time.monotonic())))
            except GoQueueError as exc:
                error = exc
            else:
                if idempotent:
                    self._session.written(topic, partition, len(batch))
                _settle(batch, acknowledged=(topic, partition, base_offset))
                return
            if not idempotent:
                _settle(batch, error=error)
                return
            if isinstance(error, OutOfOrderSequence):
                self._session.abandon(topic, partition)  # a new epoch; then the batch is sent again
            delay = self._delivery.retry_delay(error, attempt, deadline - time.monotonic(), self._rng)
            if delay is None:
                self._session.abandon(topic, partition)  # written or not: its sequences are never reused
                _settle(batch, error=self._delivery.final_error(error, attempt + 1))
                return
            self.retries += 1
            await asyncio.sleep(delay)
            attempt += 1


def _settle(batch: Iterable[Pending], *, acknowledged: tuple[str, int, int] | None = None,
            error: BaseException | None = None) -> None:
    """Answer every future of a batch: its record's offset (base + position; -1 when unknown), or the error."""
    for position, pending in enumerate(batch):
        if pending.future.done():  # the caller cancelled it
            continue
        if acknowledged is None:
            assert error is not None
            pending.future.set_exception(error)
        else:
            topic, partition, base = acknowledged
            pending.future.set_result(Acknowledgement(topic, partition, base + position if base >= 0 else -1))
