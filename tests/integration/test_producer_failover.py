"""The batching producer (`goqueue.client.producer`) through a SIGKILL of the partition leader, over gRPC and HTTP
binary batches (on httpx and on the lean HTTP/1.1 wire): many concurrent senders share one producer per transport,
each given every broker's address, and none may see an error; the log must hold every acknowledged record exactly
once, at its offset, in the order each sender sent them (`History.check`, as tests/integration/test_produce_failover.py
checks the other clients)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_process import DELIVERY_TIMEOUT_S, PRODUCE_TIMEOUT_S, History, LocalCluster, consume_all

from goqueue.client.batch_transport import BatchTransport
from goqueue.client.delivery import DeliveryPolicy
from goqueue.client.grpc_batch_transport import GrpcBatchTransport
from goqueue.client.http import GoQueueClient
from goqueue.client.http_batch_transport import HttpBatchTransport
from goqueue.client.producer import Producer, ProducerSettings
from goqueue.models import TopicCreate
from goqueue.records import RecordIn
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

TOPIC, PARTITIONS = "producer-failover", 3
SENDERS = 4        # per producer: each awaits every acknowledgement before its next send
PIPELINED = 2      # per producer: each sends 10 records, then awaits them
PROGRESS = 30      # records each sender must get acknowledged after a fault
WAIT_S = 120.0
SYNC_S = 90.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path).start()
    try:
        yield running
    finally:
        for broker in running.brokers:
            if broker.process is not None and broker.running:
                os.kill(broker.pid, signal.SIGCONT)
                broker.stop()
        for broker in running.brokers:
            assert "Traceback" not in broker.log_text(), broker.log_text()[-3000:]


class Senders(threading.Thread):
    """One producer per transport and its senders, on an event loop of their own, until `stopping` is set."""

    def __init__(self, cluster: LocalCluster, history: History) -> None:
        super().__init__(daemon=True)
        self.cluster, self.history = cluster, history
        self.stopping = threading.Event()
        self.tags = [f"{kind}{i}" for kind in ("grpc", "http", "lean") for i in range(SENDERS + PIPELINED)]

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        brokers = range(len(self.cluster.brokers))
        settings = ProducerSettings(delivery=DeliveryPolicy(timeout_s=DELIVERY_TIMEOUT_S))
        transports: dict[str, BatchTransport] = {
            "grpc": GrpcBatchTransport([self.cluster.brokers[i].grpc_target for i in brokers], PRODUCE_TIMEOUT_S),
            "http": HttpBatchTransport([self.cluster.url(i) for i in brokers], PRODUCE_TIMEOUT_S, wire="httpx"),
            "lean": HttpBatchTransport([self.cluster.url(i) for i in brokers], PRODUCE_TIMEOUT_S)}
        producers = {kind: Producer(transport, settings) for kind, transport in transports.items()}
        await asyncio.gather(*(self._send(producers[tag[:4]], tag, 10 if int(tag[4:]) >= SENDERS else 1)
                               for tag in self.tags))
        for producer in producers.values():
            await producer.close()

    async def _send(self, producer: Producer, tag: str, together: int) -> None:
        n = 0
        while not self.stopping.is_set():
            values = [f"{tag}-{n + i}" for i in range(together)]
            futures = [await producer.send(TOPIC, RecordIn(None, v.encode(), [])) for v in values]
            await asyncio.wait(futures)
            for value, future in zip(values, futures, strict=True):
                if future.exception() is not None:
                    self.history.errors.append(f"{tag}: {future.exception()!r}")
                    await asyncio.sleep(0.05)
                else:
                    ack = future.result()
                    self.history.record([{"partition": ack.partition, "offset": ack.offset}], [value])
            n += together

    def progress(self, more: int = PROGRESS) -> None:
        targets = {tag: self.history.count_of(tag) + more for tag in self.tags}
        wait_until(lambda: all(self.history.count_of(tag) >= targets[tag] for tag in self.tags), WAIT_S,
                   message=f"{more} more acknowledged records from each sender (errors: {self.history.errors[:3]})")


def in_sync(cluster: LocalCluster, via: int) -> bool:
    return all(len(cluster.partition(TOPIC, p, via)["isr"]) == 3 for p in range(PARTITIONS))


def test_sigkill_of_the_leader_loses_and_duplicates_nothing(cluster: LocalCluster) -> None:
    with GoQueueClient([cluster.url(i) for i in range(3)]) as client:
        client.create_topic(TopicCreate(name=TOPIC, partitions=PARTITIONS, replication_factor=3))
    history = History()
    senders = Senders(cluster, history)
    senders.start()
    try:
        senders.progress()
        victim = cluster.leader_of(TOPIC, 0)
        assert victim is not None
        cluster.brokers[victim].kill()
        survivor = next(i for i in range(3) if i != victim)
        wait_until(lambda: cluster.leader_of(TOPIC, 0, survivor) not in (None, victim), 30, message="a new leader")
        senders.progress()  # through the failover, with a broker of every sender's list dead
        cluster.restart(victim)
        wait_until(lambda: in_sync(cluster, survivor), SYNC_S, message="the killed broker back in every ISR")
        senders.progress()
    finally:
        senders.stopping.set()
        senders.join(DELIVERY_TIMEOUT_S + 60)
    assert not senders.is_alive()
    assert not history.errors, history.errors[:5]
    with cluster.client(survivor) as http:
        history.check(consume_all(http, TOPIC, PARTITIONS), exactly_once=True)
    print(f"acknowledged: {history.count()} records from {len(senders.tags)} senders")
