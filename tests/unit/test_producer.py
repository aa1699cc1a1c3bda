"""The batching producer (`goqueue.client.producer`) against an in-memory broker: batching by linger and size,
back-pressure, a failed batch failing only its own sends, order per partition, idempotent resends, flush and close.
No network: `FakeBroker` is the producer's transport and keeps each partition's log and producer table."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from goqueue.client.delivery import DeliveryPolicy
from goqueue.client.producer import Producer, ProducerClosed, ProducerSettings, record_size
from goqueue.client.producer_queue import Acknowledgement
from goqueue.errors import GoQueueError, InvalidRequest, NotLeader, OutOfOrderSequence, RecordTooLarge, Unavailable
from goqueue.models import Acks
from goqueue.partitioning import partition_for_key
from goqueue.records import RecordIn
from goqueue.storage import batch as batches

pytestmark = pytest.mark.unit

QUICK_RETRIES = DeliveryPolicy(backoff_initial_s=0.001, backoff_max_s=0.001)
LOSE_ANSWER = "lose the answer"  # a fault: the batch is written, then the answer never arrives


@dataclass
class Sent:
    partition: int
    values: list[bytes]
    stamp: tuple[int, int, int]


@dataclass
class FakeBroker:
    """Each partition's log (values) and, per producer id, its last batch (epoch, first sequence, count, base
    offset) — what a leader checks a stamped batch against (`storage/producers.py`, here only the latest batch)."""

    partitions: int = 1
    timeout_s: float = 5.0
    faults: list[GoQueueError | str] = field(default_factory=list)  # taken one per request, in order
    logs: dict[int, list[bytes]] = field(default_factory=dict)
    requests: list[Sent] = field(default_factory=list)
    lookups: int = 0
    gate: asyncio.Event | None = None  # while clear, requests wait (a slow broker)
    latency_s: float = 0.0  # each request's round trip
    last: dict[tuple[int, int], tuple[int, int, int, int]] = field(default_factory=dict)

    closed: bool = False

    async def close(self) -> None:
        self.closed = True

    async def partition_count(self, topic: str) -> int:
        self.lookups += 1
        return self.partitions

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        header = batches.validate_batch(batch)
        values = [r.value or b"" for r in batches.decode_records(batch)]
        stamp = (header.producer_id, header.producer_epoch, header.base_sequence)
        self.requests.append(Sent(partition, values, stamp))
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.latency_s)
        fault = self.faults.pop(0) if self.faults else None
        if isinstance(fault, GoQueueError):
            raise fault
        base = self._append(partition, values, stamp)
        if fault == LOSE_ANSWER:
            raise Unavailable("the connection broke after the write")
        return base

    def _append(self, partition: int, values: list[bytes], stamp: tuple[int, int, int]) -> int:
        producer_id, epoch, sequence = stamp
        log = self.logs.setdefault(partition, [])
        last = self.last.get((partition, producer_id))
        if last is not None and last[:3] == (epoch, sequence, len(values)):
            return last[3]  # a resend of the batch written last: its offsets, nothing written
        if last is not None and epoch == last[0] and sequence != last[1] + last[2]:
            raise OutOfOrderSequence(f"expected sequence {last[1] + last[2]}, got {sequence}")
        self.last[(partition, producer_id)] = (epoch, sequence, len(values), len(log))
        log.extend(values)
        return len(log) - len(values)


def record(value: str, key: str | None = None) -> RecordIn:
    return RecordIn(key.encode() if key is not None else None, value.encode(), [])


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def settle() -> None:
    """Let every ready task run (a few event-loop turns)."""
    for _ in range(20):
        await asyncio.sleep(0)


# -- batching ------------------------------------------------------------------------------------------------------

def test_records_sent_within_the_linger_go_as_one_batch_and_a_flush_sends_at_once() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        producer = Producer(broker, ProducerSettings(linger_s=3600))
        futures = [await producer.send("t", record(f"v{n}")) for n in range(3)]
        await settle()
        assert broker.requests == []  # lingering: nothing sent yet
        await producer.flush()
        assert [r.values for r in broker.requests] == [[b"v0", b"v1", b"v2"]]
        assert [f.result() for f in futures] == [Acknowledgement("t", 0, n) for n in range(3)]
        await producer.close()

    run(scenario)


def test_a_short_linger_sends_the_batch_by_itself() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        producer = Producer(broker, ProducerSettings(linger_s=0.01))
        futures = [await producer.send("t", record(f"v{n}")) for n in range(3)]
        assert [(await f).offset for f in futures] == [0, 1, 2]
        assert len(broker.requests) == 1
        await producer.close()

    run(scenario)


def test_records_sent_behind_a_batch_in_flight_go_together_up_to_the_batch_size() -> None:
    async def scenario() -> None:
        broker = FakeBroker(gate=asyncio.Event())
        size = record_size(record("v0"))
        producer = Producer(broker, ProducerSettings(batch_bytes=2 * size))
        first = await producer.send("t", record("v0"))
        await settle()
        assert len(broker.requests) == 1  # in flight, held by the broker
        rest = [await producer.send("t", record(f"v{n}")) for n in range(1, 6)]
        await settle()
        assert len(broker.requests) == 1  # one batch per partition in flight
        assert broker.gate is not None
        broker.gate.set()
        await asyncio.gather(first, *rest)
        assert [r.values for r in broker.requests] == [[b"v0"], [b"v1", b"v2"], [b"v3", b"v4"], [b"v5"]]
        await producer.close()

    run(scenario)


def test_senders_answered_together_send_together_again() -> None:
    async def scenario() -> None:
        broker = FakeBroker(latency_s=0.002)
        producer = Producer(broker)
        counts = [0] * 4

        async def sender(index: int) -> None:
            while counts[index] < 30:
                await producer.send_and_wait("t", record(f"s{index}"))
                counts[index] += 1

        first = asyncio.create_task(sender(0))
        await asyncio.sleep(0.001)  # the others start while the first one's batch is in flight
        await asyncio.gather(first, *(sender(i) for i in range(1, 4)))
        await producer.close()
        assert [len(r.values) for r in broker.requests[3:23]] == [4] * 20  # not 1 and 3, alternating

    run(scenario)


def test_batch_records_bounds_a_batch_too() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        producer = Producer(broker, ProducerSettings(linger_s=3600, batch_records=2))
        futures = [await producer.send("t", record(f"v{n}")) for n in range(5)]
        await producer.flush()
        assert [len(r.values) for r in broker.requests] == [2, 2, 1]
        assert [f.result().offset for f in futures] == [0, 1, 2, 3, 4]
        await producer.close()

    run(scenario)


# -- back-pressure ---------------------------------------------------------------------------------------------------

def test_send_waits_while_unanswered_records_fill_the_buffer() -> None:
    async def scenario() -> None:
        broker = FakeBroker(gate=asyncio.Event())
        size = record_size(record("v0"))
        producer = Producer(broker, ProducerSettings(buffer_bytes=3 * size))
        held = [await producer.send("t", record(f"v{n}")) for n in range(3)]
        fourth = asyncio.create_task(producer.send("t", record("v3")))
        await settle()
        assert not fourth.done()  # the buffer is full until the broker answers
        assert broker.gate is not None
        broker.gate.set()
        assert (await (await fourth)).offset == 3
        assert [(await f).offset for f in held] == [0, 1, 2]
        await producer.close()

    run(scenario)


def test_a_full_buffer_sends_lingering_batches_at_once() -> None:
    async def scenario() -> None:
        broker = FakeBroker()
        size = record_size(record("v0"))
        producer = Producer(broker, ProducerSettings(linger_s=3600, buffer_bytes=3 * size))
        held = [await producer.send("t", record(f"v{n}")) for n in range(3)]
        await settle()  # the partition's sender lingers
        fourth = await producer.send("t", record("v3"))  # waits for room, which only sending the others makes
        assert [f.result().offset for f in held] == [0, 1, 2]
        await producer.flush()
        assert fourth.result().offset == 3
        await producer.close()

    run(scenario)


def test_a_record_larger_than_the_buffer_is_refused_at_once() -> None:
    async def scenario() -> None:
        producer = Producer(FakeBroker(), ProducerSettings(buffer_bytes=100))
        with pytest.raises(RecordTooLarge):
            await producer.send("t", record("x" * 100))
        await producer.close()

    run(scenario)


# -- errors ------------------------------------------------------------------------------------------------------------

def test_a_failed_batch_fails_exactly_its_own_sends() -> None:
    async def scenario() -> None:
        broker = FakeBroker(faults=["", InvalidRequest("refused"), ""])
        producer = Producer(broker, ProducerSettings(linger_s=3600, batch_records=2))
        futures = [await producer.send("t", record(f"v{n}")) for n in range(6)]
        await producer.flush()
        outcomes = [f.exception() or f.result().offset for f in futures]
        assert outcomes[:2] == [0, 1]
        assert all(isinstance(e, InvalidRequest) for e in outcomes[2:4])
        assert outcomes[4:] == [2, 3]  # the next batch is written after the failed one
        assert broker.logs[0] == [b"v0", b"v1", b"v4", b"v5"]
        await producer.close()

    run(scenario)


def test_flush_raises_nothing_and_close_refuses_later_sends() -> None:
    async def scenario() -> None:
        broker = FakeBroker(faults=[InvalidRequest("refused")])
        producer = Producer(broker)
        failed = await producer.send("t", record("v0"))
        await producer.close()  # flushes: the failure is the future's
        assert isinstance(failed.exception(), InvalidRequest)
        with pytest.raises(ProducerClosed):
            await producer.send("t", record("v1"))

    run(scenario)


# -- order and idempotence ---------------------------------------------------------------------------------------------

def test_each_senders_records_are_written_in_order_per_partition() -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=4)
        producer = Producer(broker, ProducerSettings(batch_records=7))

        async def sender(name: str) -> None:
            for n in range(50):
                if n % 3 == 0:
                    await producer.send_and_wait("t", record(f"{name}-{n}", key=name))
                else:  # several outstanding at once
                    await producer.send("t", record(f"{name}-{n}", key=name))

        await asyncio.gather(*(sender(f"s{i}") for i in range(8)))
        await producer.close()
        assert broker.lookups == 1  # one partition-count lookup however many senders asked
        for i in range(8):
            partition = partition_for_key(f"s{i}".encode(), 4)
            mine = [v.decode() for v in broker.logs[partition] if v.decode().startswith(f"s{i}-")]
            assert mine == [f"s{i}-{n}" for n in range(50)]

    run(scenario)


def test_a_batch_whose_answer_was_lost_is_resent_with_its_stamp_and_written_once() -> None:
    async def scenario() -> None:
        broker = FakeBroker(faults=[LOSE_ANSWER, NotLeader("moved"), ""])
        producer = Producer(broker, ProducerSettings(linger_s=3600, delivery=QUICK_RETRIES), rng=random.Random(7))
        futures = [await producer.send("t", record(f"v{n}")) for n in range(3)]
        await producer.flush()
        assert [f.result().offset for f in futures] == [0, 1, 2]
        assert broker.logs[0] == [b"v0", b"v1", b"v2"]  # written once
        assert len(broker.requests) == 3
        assert len({r.stamp for r in broker.requests}) == 1
        assert producer.retries == 2
        await producer.send("t", record("v3"))
        await producer.flush()
        assert broker.requests[-1].stamp[2] == 3  # the next batch continues the sequence
        await producer.close()

    run(scenario)


def test_out_of_order_sequence_moves_to_a_new_epoch_and_resends() -> None:
    async def scenario() -> None:
        broker = FakeBroker(faults=["", OutOfOrderSequence("lost state"), ""])
        producer = Producer(broker, ProducerSettings(linger_s=3600, delivery=QUICK_RETRIES))
        first = await producer.send("t", record("v0"))
        await producer.flush()
        second = await producer.send("t", record("v1"))
        await producer.flush()
        assert (first.result().offset, second.result().offset) == (0, 1)
        stamps = [r.stamp for r in broker.requests]
        assert stamps[1][1:] == (0, 1)  # epoch 0, sequence 1: refused
        assert stamps[2][1:] == (1, 0)  # then epoch 1 from sequence 0
        await producer.close()

    run(scenario)


@pytest.mark.parametrize("bound", ["bytes", "records"])
def test_keyless_records_stick_to_a_partition_until_a_batch_went_there(bound: str) -> None:
    async def scenario() -> None:
        broker = FakeBroker(partitions=3)
        size = record_size(record("v00"))
        settings = (ProducerSettings(linger_s=3600, batch_bytes=4 * size) if bound == "bytes" else
                    ProducerSettings(linger_s=3600, batch_records=4))
        producer = Producer(broker, settings)
        futures = [await producer.send("t", record(f"v{n:02}")) for n in range(12)]
        await producer.flush()
        partitions = [f.result().partition for f in futures]
        assert [partitions[i:i + 4] for i in (0, 4, 8)] == [[p] * 4 for p in partitions[::4]]
        assert len(set(partitions)) == 3
        await producer.close()

    run(scenario)
