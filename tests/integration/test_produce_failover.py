"""Produce through failovers with every client of the project (issue 12): the HTTP client library, the gRPC client
library, `goqueue-cli produce` and the load tool, each given every broker's address and producing without pause
while the partition leader is SIGKILLed, SIGSTOPped, or the brokers restart one by one. No produce error may reach
the caller, and the log must hold every acknowledged record exactly once, at its offset, in the order each
producer sent them (`History.check`; the load tool checks the same of its own records and says so in its report).

Before, a producer that reached the killed broker failed at once ("broker unreachable", exit 6), and one that got
NOT_LEADER after its write landed could only give up or write it twice. The last test loses answers on the wire
on purpose: the resend must be answered with the first write's offsets.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_process import BrokerProcess
from cluster_process import DELIVERY_TIMEOUT_S, PRODUCE_TIMEOUT_S, History, LocalCluster, Producer, consume_all

from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError, Unavailable
from goqueue.models import ProduceRecord, TopicCreate
from goqueue.records import RecordIn
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

TOPIC, LOAD_TOPIC, PARTITIONS = "failover", "failover-load", 3
LOAD_TOOL = Path(__file__).resolve().parents[2] / "deploy" / "testing" / "load" / "goqueue_load.py"
PROGRESS = 30      # records each in-test producer must get acknowledged after a fault
WAIT_S = 120.0     # for progress through a fault: a CLI run that met a frozen broker waits out its 30 s timeout
SYNC_S = 90.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path).start()
    try:
        yield running
    finally:
        for broker in running.brokers:
            if broker.process is not None and broker.running:
                os.kill(broker.pid, signal.SIGCONT)  # a test that failed while one was frozen
                broker.stop()
        for broker in running.brokers:
            assert "Traceback" not in broker.log_text(), broker.log_text()[-3000:]


class GrpcProducer(threading.Thread):
    """`Producer`'s twin over gRPC: `GrpcClient.produce` on its own event loop, given every broker's target."""

    def __init__(self, cluster: LocalCluster, topic: str, history: History, tag: str, batch: int = 10) -> None:
        super().__init__(daemon=True)
        self.targets = [b.grpc_target for b in cluster.brokers]
        self.topic, self.history, self.tag, self.batch = topic, history, tag, batch
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._produce())

    async def _produce(self) -> None:
        async with GrpcClient(self.targets, timeout_s=PRODUCE_TIMEOUT_S,
                              delivery_timeout_s=DELIVERY_TIMEOUT_S) as client:
            n = 0
            while not self.stopping.is_set():
                values = [f"{self.tag}-{n + i}" for i in range(self.batch)]
                try:
                    response = await client.produce(self.topic, [RecordIn(None, v.encode(), []) for v in values])
                except GoQueueError as exc:
                    self.history.errors.append(f"{exc.code}: {exc.message}")
                    await asyncio.sleep(0.05)
                    continue
                self.history.record([o.model_dump() for o in response.offsets], values)
                n += self.batch


class CliProducer(threading.Thread):
    """`goqueue-cli --server a,b,c -o json produce` run again and again, a batch of lines per run (each run is a new
    producer: a new process); the address list starts at the next broker each run, as a load balancer would."""

    def __init__(self, cluster: LocalCluster, topic: str, history: History, tag: str, batch: int = 20) -> None:
        super().__init__(daemon=True)
        self.urls = [cluster.url(i) for i in range(len(cluster.brokers))]
        self.topic, self.history, self.tag, self.batch = topic, history, tag, batch
        self.stopping = threading.Event()

    def run(self) -> None:
        n = run = 0
        while not self.stopping.is_set():
            servers = ",".join(self.urls[run % 3:] + self.urls[:run % 3])
            values = [f"{self.tag}-{n + i}" for i in range(self.batch)]
            result = subprocess.run(["goqueue-cli", "--server", servers, "-o", "json", "produce", "--topic",
                                     self.topic], input="\n".join(values) + "\n", capture_output=True, text=True,
                                    timeout=DELIVERY_TIMEOUT_S + 60, check=False)
            run += 1
            if result.returncode != 0:
                self.history.errors.append(f"exit {result.returncode}: {result.stderr.strip()}")
                continue
            self.history.record(json.loads(result.stdout), values)
            n += self.batch


class Clients:
    """Every client producing at once: three into TOPIC (checked here), the load tool into LOAD_TOPIC."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.history = History()
        self.producers: list[Any] = [Producer(cluster, TOPIC, self.history, "http"),
                                     GrpcProducer(cluster, TOPIC, self.history, "grpc"),
                                     CliProducer(cluster, TOPIC, self.history, "cli")]
        servers = ",".join(cluster.url(i) for i in range(len(cluster.brokers)))
        self.load = subprocess.Popen(
            [sys.executable, str(LOAD_TOOL), "--server", servers, "--topic", LOAD_TOPIC, "--no-create-topic",
             "--rate", "200", "--duration", "900", "--batch", "10", "--producers", "2", "--consumers", "2",
             "--drain-timeout", "90", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for producer in self.producers:
            producer.start()

    def progress(self, more: int = PROGRESS) -> None:
        """Wait until every in-test producer has `more` records acknowledged beyond what it has now."""
        tags = ("http", "grpc", "cli")
        targets = {tag: self.history.count_of(tag) + more for tag in tags}
        wait_until(lambda: all(self.history.count_of(tag) >= targets[tag] for tag in tags), WAIT_S,
                   message=f"{more} more acknowledged records from each client (errors: {self.history.errors[:3]})")

    def finish(self) -> dict[str, Any]:
        """Stop every producer; check the log; the load tool's report."""
        for producer in self.producers:
            producer.stopping.set()
        self.load.send_signal(signal.SIGTERM)  # stops producing; it drains, checks and reports
        for producer in self.producers:
            producer.join(DELIVERY_TIMEOUT_S + 60)
        out, err = self.load.communicate(timeout=180)
        assert not self.history.errors, self.history.errors[:5]
        live = self.cluster.running()[0]
        with self.cluster.client(live) as http:
            self.history.check(consume_all(http, TOPIC, PARTITIONS), exactly_once=True)
        assert self.load.returncode == 0, out + err
        report: dict[str, Any] = json.loads(out)
        assert report["produce"]["failed_requests"] == 0
        assert report["produce"]["records"] > 0
        assert (report["missing_acknowledged_records"], report["duplicated_records"],
                report["out_of_order_records"]) == (0, 0, 0), report
        print(f"acknowledged: { {t: self.history.count_of(t) for t in ('http', 'grpc', 'cli')} }; load tool: "
              f"{report['produce']['records']} records, {report['produce']['retries']} retries, "
              f"errors retried {report['errors']}")
        return report


def setup_topics(cluster: LocalCluster) -> None:
    with GoQueueClient([cluster.url(i) for i in range(3)]) as client:
        for name in (TOPIC, LOAD_TOPIC):
            client.create_topic(TopicCreate(name=name, partitions=PARTITIONS, replication_factor=3))


def in_sync(cluster: LocalCluster, via: int) -> bool:
    return all(len(cluster.partition(topic, p, via)["isr"]) == 3 for topic in (TOPIC, LOAD_TOPIC)
               for p in range(PARTITIONS))


def fault_test(cluster: LocalCluster, fault: Callable[[Clients], None]) -> dict[str, Any]:
    setup_topics(cluster)
    clients = Clients(cluster)
    try:
        clients.progress()
        fault(clients)
        clients.progress()
        return clients.finish()
    finally:
        for producer in clients.producers:
            producer.stopping.set()
        if clients.load.poll() is None:
            clients.load.kill()
            clients.load.communicate()


def test_sigkill_of_the_leader(cluster: LocalCluster) -> None:
    def kill_the_leader(clients: Clients) -> None:
        victim = cluster.leader_of(TOPIC, 0)
        assert victim is not None
        cluster.brokers[victim].kill()
        survivor = next(i for i in range(3) if i != victim)
        wait_until(lambda: cluster.leader_of(TOPIC, 0, survivor) not in (None, victim), 30, message="a new leader")
        clients.progress()  # through the failover, with a broker of every client's list dead
        cluster.restart(victim)
        wait_until(lambda: in_sync(cluster, survivor), SYNC_S, message="the killed broker back in every ISR")

    fault_test(cluster, kill_the_leader)


def test_sigstop_of_the_leader(cluster: LocalCluster) -> None:
    def freeze_the_leader(clients: Clients) -> None:
        victim = cluster.leader_of(TOPIC, 0)
        assert victim is not None
        os.kill(cluster.brokers[victim].pid, signal.SIGSTOP)
        survivor = next(i for i in range(3) if i != victim)
        try:
            wait_until(lambda: cluster.leader_of(TOPIC, 0, survivor) not in (None, victim), 30,
                       message="a new leader")
            clients.progress()  # a frozen broker accepts connections and never answers: clients must move on
        finally:
            os.kill(cluster.brokers[victim].pid, signal.SIGCONT)
        wait_until(lambda: in_sync(cluster, survivor), SYNC_S, message="the frozen broker back in every ISR")

    fault_test(cluster, freeze_the_leader)


def test_rolling_restart(cluster: LocalCluster) -> None:
    def restart_each_broker(clients: Clients) -> None:
        for broker_id in (2, 1, 0):  # as the operator rolls: highest ordinal first
            other = (broker_id + 1) % 3
            assert cluster.brokers[broker_id].stop() == 0  # SIGTERM: leaderships handed over first
            clients.progress(10)
            cluster.restart(broker_id)
            wait_until(partial(in_sync, cluster, other), SYNC_S, message=f"broker {broker_id} back in every ISR")

    fault_test(cluster, restart_each_broker)


class LosingAnswers(httpx.HTTPTransport):
    """Sends every request to the real broker; the answers to the first `lose` produce requests never arrive (the
    connection breaks after the broker wrote them), which is what a leader dying after its write looks like."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose = lose

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and request.url.path.endswith("/records") and self.lose > 0:
            self.lose -= 1
            response.read()
            response.close()
            raise httpx.ReadError("connection reset after the write", request=request)
        return response


def test_an_answer_lost_after_the_write_is_resent_and_written_once(broker: BrokerProcess) -> None:
    with GoQueueClient(broker.url) as client:
        client.create_topic(TopicCreate(name="lost-answers", partitions=1))
    with GoQueueClient(broker.url, transport=LosingAnswers(2)) as client:
        first = client.produce("lost-answers", [ProduceRecord(value=f"v{n}") for n in range(5)])
        assert [o.offset for o in first.offsets] == [0, 1, 2, 3, 4]
        assert first.duplicate  # the third send was answered with the first one's offsets
        assert client.produce_retries == 2
        second = client.produce("lost-answers", [ProduceRecord(value="v5")])
        assert ([o.offset for o in second.offsets], second.duplicate) == ([5], False)
    # not idempotent: never resent, so the caller cannot know it was written
    with GoQueueClient(broker.url, transport=LosingAnswers(1), idempotent=False) as plain, \
            pytest.raises(Unavailable):
        plain.produce("lost-answers", [ProduceRecord(value="v6")])
    with httpx.Client(base_url=broker.url) as http:
        fetched = http.get("/v1/topics/lost-answers/partitions/0/records").json()["records"]
    assert [r["value"] for r in fetched] == [f"v{n}" for n in range(7)]  # each once, in order
