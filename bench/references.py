#!/usr/bin/env python3
"""GoQueue's batching producer and batched produce against Redis and RabbitMQ in one run (issue 18, items 4 and 5).

Every server durable before it answers, 100-byte records, on loopback, started by this script with its own data
directory and stopped at the end:
  * GoQueue: one broker process, `storage.fsync=always` (fdatasync before every acknowledgement), a topic of 4
    partitions;
  * Redis 7 Streams: `appendonly yes`, `appendfsync always` (as bench/produce_consume.py runs it);
  * RabbitMQ (Debian `rabbitmq-server`): a quorum queue (its Raft log is fsynced before a publisher confirm),
    persistent messages, publisher confirms.

Part 1, the application pattern of issue 18 item 4 — 12 concurrent senders in one asyncio process, each sending
single records and awaiting each acknowledgement: GoQueue's `Producer` (gRPC `ProduceBatch`, then HTTP binary
batches on httpx and on the lean HTTP/1.1 wire: it batches across the senders), redis-py (`XADD` per record, 12
connections), aio-pika (12 connections, a publish per record awaiting its confirm).

Part 2, batched produce (item 5) — 3 client processes x 4 in flight, closed loop, batches of 100 and 1000 records:
GoQueue gRPC binary batches (bench/produce_consume.py's workers), RabbitMQ (each of the 12 publishers, a connection
of its own, publishes a batch and awaits all its confirms), Redis (`redis-benchmark -P <batch>`, 12 connections).

Usage: python bench/references.py [--seconds 4] [--rounds 3] [--skip-rabbitmq] [--skip-redis]
Needs redis-server and rabbitmq-server (apt), redis and aio-pika (pip install -e '.[bench]').
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aio_pika
import httpx
import redis.asyncio as aioredis
from aio_pika.abc import AbstractChannel, AbstractConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))

import produce_consume
import runinfo
from produce_consume import Broker, _grpc_worker, closed_loop, free_port, redis_reference

from goqueue.client.grpc_batch_transport import GrpcBatchTransport
from goqueue.client.http_batch_transport import HttpBatchTransport
from goqueue.client.producer import Producer
from goqueue.models import Acks
from goqueue.records import RecordIn

RECORD = b"v" * 100
SENDERS = 12
CLIENT_PROCESSES, IN_FLIGHT = 3, 4
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # the Debian package's scripts, run as this user (not via su)


def row(name: str, figure: str) -> None:
    print(f"{name:<66} {figure}", flush=True)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def awaited_senders(send: Callable[[], Awaitable[object]], seconds: float) -> tuple[float, float]:
    """SENDERS coroutines, each sending one record and awaiting it, for `seconds`: (records/s, p99 seconds)."""
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def sender() -> None:
        while (start := time.perf_counter()) < end:
            await send()
            latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return len(latencies) / (time.perf_counter() - started), percentile(latencies, 0.99)


class CountingTransport:
    """A producer transport that counts the requests it sends (records per request = batching achieved)."""

    def __init__(self, inner: GrpcBatchTransport | HttpBatchTransport) -> None:
        self.inner = inner
        self.timeout_s = inner.timeout_s
        self.requests = 0

    async def partition_count(self, topic: str) -> int:
        return await self.inner.partition_count(topic)

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        self.requests += 1
        return await self.inner.send_batch(topic, partition, batch, acks, timeout_s)

    async def close(self) -> None:
        await self.inner.close()


async def goqueue_senders(transport: GrpcBatchTransport | HttpBatchTransport, topic: str,
                          seconds: float) -> tuple[float, float, float]:
    counting = CountingTransport(transport)
    async with Producer(counting) as producer:
        record = RecordIn(None, RECORD, [])
        await producer.send_and_wait(topic, record)  # the partition count, the connection
        counting.requests = 0
        rate, p99 = await awaited_senders(lambda: producer.send_and_wait(topic, record), seconds)
    return rate, p99, rate * seconds / max(1, counting.requests)


async def redis_senders(port: int, seconds: float) -> tuple[float, float]:
    pool = aioredis.ConnectionPool(host="127.0.0.1", port=port, max_connections=SENDERS)
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.xadd("bench-senders", {"v": RECORD})
        return await awaited_senders(lambda: client.xadd("bench-senders", {"v": RECORD}), seconds)
    finally:
        await client.aclose()
        await pool.disconnect()


# -- RabbitMQ --------------------------------------------------------------------------------------------------------

class RabbitMQ:
    """rabbitmq-server on loopback with a data directory, node name, ports and epmd of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.port, dist, self.epmd = free_port(), free_port(), free_port()
        self.node = f"goqueue-bench-{os.getpid()}@localhost"
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        self.env = {**os.environ, "HOME": str(root), "RABBITMQ_NODENAME": self.node, "ERL_EPMD_PORT": str(self.epmd),
                    "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                    "RABBITMQ_DIST_PORT": str(dist), "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
                    "RABBITMQ_LOG_BASE": str(root / "log"), "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq"),
                    "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
                    "RABBITMQ_PID_FILE": str(root / "pid")}
        self.log = open(root / "server.out", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        asyncio.run(self._wait_ready())

    async def _wait_ready(self, timeout_s: float = 90) -> None:
        """Until an AMQP connection opens (the port first: aio-pika logs every refused attempt)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                connection = await aio_pika.connect(self.url)
            except (OSError, aio_pika.exceptions.AMQPError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"rabbitmq-server did not start; see {self.root / 'server.out'}") from None
                await asyncio.sleep(0.5)
                continue
            await connection.close()
            return

    def stop(self) -> None:
        subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "stop"], env=self.env,
                       capture_output=True, timeout=60, check=False)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # the epmd daemon the node started, on its own port: ours to stop
        subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, timeout=10, check=False)
        self.log.close()


async def rabbit_channels(url: str, count: int,
                          queue: str) -> tuple[list[AbstractConnection], list[AbstractChannel]]:
    """`count` connections, each with one confirming channel; the quorum queue declared."""
    connections: list[AbstractConnection] = [await aio_pika.connect(url) for _ in range(count)]
    channels = [await c.channel(publisher_confirms=True) for c in connections]
    await channels[0].declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
    return connections, channels


async def rabbit_senders(url: str, seconds: float) -> tuple[float, float]:
    connections, channels = await rabbit_channels(url, SENDERS, "bench-senders")
    turn = iter(range(1 << 62))
    try:
        def publish() -> Awaitable[object]:
            channel = channels[next(turn) % SENDERS]
            return channel.default_exchange.publish(
                aio_pika.Message(RECORD, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="bench-senders")

        return await awaited_senders(publish, seconds)
    finally:
        for connection in connections:
            await connection.close()


def _rabbit_worker(url: str, batch: int, seconds: float) -> tuple[int, list[float]]:
    """One client process of part 2: IN_FLIGHT publishers, each on a connection of its own, each publishing a batch
    and awaiting every confirm of it, in a closed loop."""

    async def run() -> tuple[int, list[float]]:
        connections, channels = await rabbit_channels(url, IN_FLIGHT, "bench-batches")
        latencies: list[float] = []
        end = time.perf_counter() + seconds

        async def publisher(channel: AbstractChannel) -> None:
            exchange = channel.default_exchange
            while (start := time.perf_counter()) < end:
                await asyncio.gather(*(exchange.publish(aio_pika.Message(
                    RECORD, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="bench-batches")
                    for _ in range(batch)))
                latencies.append(time.perf_counter() - start)

        try:
            await asyncio.gather(*(publisher(c) for c in channels))
        finally:
            for connection in connections:
                await connection.close()
        return len(latencies) * batch, latencies

    return asyncio.run(run())


def rabbit_batched(url: str, batch: int, seconds: float) -> tuple[float, float]:
    with mp.get_context("spawn").Pool(CLIENT_PROCESSES) as pool:
        results = pool.starmap(_rabbit_worker, [(url, batch, seconds)] * CLIENT_PROCESSES)
    latencies = [x for r in results for x in r[1]]
    return sum(r[0] for r in results) / seconds, percentile(latencies, 0.99)


# -- Redis -----------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def redis_server(root: Path) -> Iterator[int]:
    port = free_port()
    data = root / "redis-senders"
    data.mkdir()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
         "--appendfsync", "always", "--save", "", "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("redis did not start")
            time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-rabbitmq", action="store_true")
    parser.add_argument("--rounds", type=int, default=3, help="part 1 rounds, each server in turn")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="goqueue-references-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    print(runinfo.header("GoQueue against Redis and RabbitMQ") + f" — data in {root}", flush=True)
    broker = Broker(root)
    rabbit = None if args.skip_rabbitmq else RabbitMQ(root / "rabbitmq")
    try:
        topic = produce_consume.TOPIC
        httpx.post(broker.url + "/v1/topics", json={"name": topic, "partitions": 4}).raise_for_status()
        grpc_target = f"127.0.0.1:{broker.grpc_port}"
        print(f"\n## 1. {SENDERS} senders in one process, single {len(RECORD)}-byte records, each ack awaited "
              f"({args.rounds} rounds, alternating: the shared disk's fsync time drifts)")
        with contextlib.ExitStack() as stack:
            redis_port = None if args.skip_redis else stack.enter_context(redis_server(root))
            for round_ in range(1, args.rounds + 1):
                for name, make in (("gRPC", lambda: GrpcBatchTransport(grpc_target)),
                                   ("HTTP (httpx)", lambda: HttpBatchTransport(broker.url, wire="httpx")),
                                   ("HTTP, lean wire", lambda: HttpBatchTransport(broker.url))):
                    rate, p99, per_request = asyncio.run(goqueue_senders(make(), topic, args.seconds))
                    row(f"{round_}: GoQueue Producer over {name}", f"{rate:>9,.0f} rec/s  p99 {p99 * 1000:6.1f} ms  "
                        f"({per_request:.1f} records per request)")
                if redis_port is not None:
                    rate, p99 = asyncio.run(redis_senders(redis_port, args.seconds))
                    row(f"{round_}: Redis, redis-py XADD per record, appendfsync always",
                        f"{rate:>9,.0f} rec/s  p99 {p99 * 1000:6.1f} ms")
                if rabbit is not None:
                    rate, p99 = asyncio.run(rabbit_senders(rabbit.url, args.seconds))
                    row(f"{round_}: RabbitMQ quorum queue, aio-pika publish + confirm per record",
                        f"{rate:>9,.0f} rec/s  p99 {p99 * 1000:6.1f} ms")
        print(f"\n## 2. batched produce, {CLIENT_PROCESSES} client processes x {IN_FLIGHT} in flight, closed loop")
        for batch in (100, 1000):
            rate, p99 = closed_loop(_grpc_worker, CLIENT_PROCESSES, grpc_target, batch, args.seconds, True)
            row(f"GoQueue gRPC binary batch, batch {batch}", f"{rate:>9,.0f} rec/s  p99 {p99 * 1000:6.1f} ms")
            if rabbit is not None:
                rate, p99 = rabbit_batched(rabbit.url, batch, args.seconds)
                row(f"RabbitMQ quorum queue, publish {batch} + await confirms",
                    f"{rate:>9,.0f} rec/s  p99 {p99 * 1000:6.1f} ms")
            if not args.skip_redis:
                redis = redis_reference(root, batch, CLIENT_PROCESSES * IN_FLIGHT, 200_000)
                if redis is not None:
                    row(f"Redis XADD appendfsync always, redis-benchmark -P {batch}", f"{redis:>9,.0f} rec/s")
    finally:
        broker.stop()
        if rabbit is not None:
            rabbit.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(runinfo.footer())


if __name__ == "__main__":
    main()
