#!/usr/bin/env python3
"""Single-broker benchmark: durable produce and consume over HTTP and gRPC, with Redis Streams as the reference.

What it measures (issue 2, item 9), all with 100-byte records and fsync=always (fdatasync before every ack):
  * produce throughput for batches of 1, 100 and 1000 records — HTTP JSON, HTTP binary batch, gRPC records,
    gRPC binary batch (unary ProduceBatch calls, and pipelined on one ProduceBatchStream per client) — closed loop,
    several client processes;
  * produce latency p50/p99/p99.9 at half and at 80 % of the maximum rate (open loop from as many client processes
    as the closed loop, batch 100, HTTP binary, gRPC records and gRPC binary on a stream, each lean client too);
    with --noisy-neighbour the half-load runs again while another process burns one core (a shared node);
  * "HTTP binary batch, lean client": the same requests written as pre-built HTTP/1.1 on keep-alive connections
    (what wrk does; redis-benchmark is Redis's), so the figure is the broker's and not httpx's, which costs a Python
    client about twice the broker's CPU per request;
  * "gRPC … lean client": the same batches on one ProduceBatchStream per client process, each request serialised
    once and written as bytes, answers matched in order and only checked for an error (what ghz does for gRPC),
    so grpc.aio's own client cost is what is left on the clients' side;
  * beside every latency row, the disk's own fdatasync latency in the same seconds (a probe thread syncing a file
    of its own every 10 ms, 100 syncs/s against the 2,000 or so this disk can do): a durable acknowledgement waits
    for at least one fdatasync of the broker's own log in those seconds, so the probe's latency is about the floor
    of the row's;
  * consume throughput (records decoded by the client) over HTTP binary, HTTP JSON and gRPC;
  * Redis 7 Streams with appendonly + appendfsync always, XADD pipelined with the same batch sizes
    (redis-benchmark, the native client), in the same run;
  * the machine's fdatasync ceiling (one 100 KB write + fdatasync in a loop) so figures have their limit beside them.

Usage: python bench/produce_consume.py [--seconds 5] [--clients 3] [--skip-redis] [--skip-grpc] [--noisy-neighbour]
                                       [--latency-only]
Each client is a process with 4 requests in flight; Redis gets the same number of connections. Each produce row also
prints the CPU time per request of the broker (user + system over the row, from /proc) and of the client processes
(their own CPU while producing, not their start-up): on a shared machine the rate moves with the neighbours' load,
the CPU a request costs much less, and the clients share the broker's cores.
Prints a table; copy it into docs/PERFORMANCE.md with the date and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import runinfo

from goqueue.storage import batch as batches

RECORD = b"v" * 100
TOPIC = "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fdatasync_ceiling(directory: Path, seconds: float = 2.0) -> float:
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        os.write(fd, b"x" * 100_000)
        os.fdatasync(fd)
        count += 1
    os.close(fd)
    path.unlink()
    return count / (time.perf_counter() - started)


class DiskProbe:
    """The disk's own fdatasync latency while a latency row runs: a thread appending one batch-sized write (12 KB)
    to a file of its own and syncing it, every PERIOD_S. A durable acknowledgement waits for at least one fdatasync
    of the broker's log, so the probe's latency in the same seconds is about the floor of the row's (another file,
    but the same disk and journal); on a shared virtual disk that moves several times within a minute, which is why
    it is measured during each row and not once per run."""

    PERIOD_S = 0.01

    def __init__(self, directory: Path) -> None:
        self.path = directory / "disk-probe"
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-probe", daemon=True)

    def __enter__(self) -> DiskProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        try:
            while not self._stop.wait(self.PERIOD_S):
                started = time.perf_counter()
                os.write(fd, b"d" * 12_000)
                os.fdatasync(fd)
                self.latencies.append(time.perf_counter() - started)
        finally:
            os.close(fd)

    def summary(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return "disk fdatasync: no sample"
        return (f"disk fdatasync meanwhile ({len(lat)} samples): p50 {percentile_ms(lat, 0.5):.2f} ms  "
                f"p99 {percentile_ms(lat, 0.99):.2f} ms  p99.9 {percentile_ms(lat, 0.999):.2f} ms")


def percentile_ms(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


class Broker:
    def __init__(self, root: Path) -> None:
        self.port, self.grpc_port, self.raft_port = free_port(), free_port(), free_port()
        env = {**os.environ, "GOQUEUE_BROKER_HOST": "127.0.0.1", "GOQUEUE_BROKER_PORT": str(self.port),
               "GOQUEUE_BROKER_GRPCPORT": str(self.grpc_port), "GOQUEUE_BROKER_RAFTPORT": str(self.raft_port),
               "GOQUEUE_BROKER_INTERNALPORT": str(free_port()),
               "GOQUEUE_STORAGE_DATADIR": str(root / "data"), "GOQUEUE_STORAGE_WALDIR": str(root / "wal"),
               "GOQUEUE_STORAGE_FSYNC": "always", "GOQUEUE_LOG_LEVEL": "warning"}
        self.log = open(root / "broker.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(["goqueue-broker"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("broker did not become ready; see broker.log")

    def cpu_seconds(self) -> float:
        """CPU time the broker process has used (user + system, all threads): per request, a figure the machine's
        other load moves far less than throughput."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


# -- closed-loop produce workers (run in child processes, each with CONCURRENCY requests in flight) -------------

CONCURRENCY = 4


async def _closed_loop_tasks(send: Callable[[], Any], batch: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def loop() -> None:
        while (start := time.perf_counter()) < end:
            await send()
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(loop() for _ in range(CONCURRENCY)))
    return len(latencies) * batch, latencies


def _timed(run: Callable[[], tuple[int, list[float]]]) -> tuple[int, list[float], float]:
    """A worker's (records, latencies) and the CPU time its process spent producing them (not its imports)."""
    started = time.process_time()
    count, latencies = run()
    return count, latencies, time.process_time() - started


def _http_worker(url: str, partition: int, batch: int, seconds: float,
                 binary: bool) -> tuple[int, list[float], float]:
    json_body = json.dumps({"records": [{"value": RECORD.decode()}] * batch, "partition": partition}).encode()
    records = [(None, RECORD, [])] * batch

    async def run() -> tuple[int, list[float]]:
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            async def send() -> None:
                if binary:
                    body = bytes(batches.build_batch(records, int(time.time() * 1000)))
                    response = await client.post(f"/v1/topics/{TOPIC}/partitions/{partition}/batches", content=body)
                else:
                    response = await client.post(f"/v1/topics/{TOPIC}/records", content=json_body,
                                                 headers={"content-type": "application/json"})
                response.raise_for_status()
            return await _closed_loop_tasks(send, batch, seconds)

    return _timed(lambda: asyncio.run(run()))


def _grpc_worker(target: str, partition: int, batch: int, seconds: float,
                 binary: bool) -> tuple[int, list[float], float]:
    from goqueue.client.grpc_client import GrpcClient
    from goqueue.records import RecordIn

    records = [RecordIn(key=None, value=RECORD, headers=[])] * batch
    raw = [(None, RECORD, [])] * batch

    async def run() -> tuple[int, list[float]]:
        async with GrpcClient(target) as client:
            async def send() -> None:
                if binary:
                    await client.produce_batch(TOPIC, partition, bytes(batches.build_batch(
                        raw, int(time.time() * 1000))))
                else:
                    await client.produce(TOPIC, records, partition=partition)
            return await _closed_loop_tasks(send, batch, seconds)

    return _timed(lambda: asyncio.run(run()))


def _grpc_stream_worker(target: str, partition: int, batch: int, seconds: float,
                        _binary: bool) -> tuple[int, list[float], float]:
    """Binary batches pipelined on one ProduceBatchStream (`BatchStream`, the batching producer's gRPC wire)."""
    from goqueue.client.grpc_batch_stream import BatchStream
    from goqueue.client.grpc_client import GrpcClient
    from goqueue.models import Acks

    raw = [(None, RECORD, [])] * batch

    async def run() -> tuple[int, list[float]]:
        async with GrpcClient(target) as client:
            stream = BatchStream(client)

            async def send() -> None:
                await stream.send(TOPIC, partition, bytes(batches.build_batch(raw, int(time.time() * 1000))),
                                  Acks.ALL, 30.0)
            try:
                return await _closed_loop_tasks(send, batch, seconds)
            finally:
                await stream.close()

    return _timed(lambda: asyncio.run(run()))


class LeanGrpcStream:
    """One ProduceBatchStream written with pre-serialised requests and read as raw answers: a load generator's gRPC
    client (as ghz's, or redis-benchmark's for Redis), where `BatchStream` builds a request and matches its answer per
    batch in Python. Answers come in request order, so a FIFO of futures pairs them; an answer that carries an
    error (field 6, `RequestError`) fails the run."""

    def __init__(self, channel: Any, request: bytes) -> None:
        self.call = channel.stream_stream("/goqueue.v1.GoQueue/ProduceBatchStream")()  # bytes in, bytes out
        self.request = request
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.writing = asyncio.Lock()  # grpc takes one write at a time on a call

    async def open(self) -> None:
        await self.call.initial_metadata()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        import grpc

        from goqueue.api.grpc.generated import goqueue_pb2 as pb

        try:
            while (answer := await self.call.read()) is not grpc.aio.EOF:
                waiter = self.waiting.popleft()
                if pb.ProduceBatchResponse.FromString(answer).HasField("error"):
                    waiter.set_exception(RuntimeError(f"produce refused: {answer[:200]!r}"))
                else:
                    waiter.set_result(None)
        finally:  # the stream ended, or broke with a status: no sender waits for an answer that cannot come
            while self.waiting:
                self.waiting.popleft().set_exception(RuntimeError("the broker ended the stream"))

    async def send(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        async with self.writing:
            self.waiting.append(waiter)
            await self.call.write(self.request)
        await waiter

    async def close(self) -> None:
        await self.call.done_writing()
        if self.reader is not None:
            await self.reader


def lean_grpc_request(partition: int, batch: int) -> bytes:
    from goqueue.api.grpc.generated import goqueue_pb2 as pb

    body = bytes(batches.build_batch([(None, RECORD, [])] * batch, int(time.time() * 1000)))
    request: bytes = pb.ProduceBatchRequest(topic=TOPIC, partition=partition, batch=body,
                                            acks=pb.ACKS_ALL).SerializeToString()
    return request


def _lean_grpc_stream_worker(target: str, partition: int, batch: int, seconds: float,
                             _binary: bool) -> tuple[int, list[float], float]:
    """The same batches as `_grpc_stream_worker`, pre-built once and written as bytes (`LeanGrpcStream`)."""
    import grpc

    async def run() -> tuple[int, list[float]]:
        async with grpc.aio.insecure_channel(target) as channel:
            stream = LeanGrpcStream(channel, lean_grpc_request(partition, batch))
            await stream.open()
            try:
                return await _closed_loop_tasks(stream.send, batch, seconds)
            finally:
                await stream.close()

    return _timed(lambda: asyncio.run(run()))


GRPC_WORKERS = (_grpc_worker, _grpc_stream_worker, _lean_grpc_stream_worker)


def _use_topic(topic: str) -> None:
    global TOPIC  # noqa: PLW0603 - the workers' module-level topic, set once per child process
    TOPIC = topic


CLIENT_CPU_S = [0.0]  # the CPU time the last closed_loop's client processes spent producing (`_timed`)


def closed_loop(worker: Callable[..., tuple[int, list[float], float]], clients: int, target: str | list[str],
                batch: int, seconds: float, *extra: object) -> tuple[float, float]:
    """Records/s over all clients (client i on partition i % 4, through target i when given a list per partition),
    and the closed loop's p99 latency in seconds; the clients' CPU time is left in CLIENT_CPU_S[0]."""
    targets = [target] if isinstance(target, str) else target
    # Spawned children import this module afresh: TOPIC as the caller set it must be handed to them.
    with mp.get_context("spawn").Pool(clients, initializer=_use_topic, initargs=(TOPIC,)) as pool:
        results = pool.starmap(worker, [(targets[i % len(targets)], i % 4, batch, seconds, *extra)
                                        for i in range(clients)])
    total = sum(r[0] for r in results)
    CLIENT_CPU_S[0] = sum(r[2] for r in results)
    latencies = sorted(x for r in results for x in r[1])
    return total / seconds, latencies[int(len(latencies) * 0.99)] if latencies else 0.0


class LeanHttp:
    """One keep-alive HTTP/1.1 connection that POSTs a fixed binary batch and reads the answer: a load generator's
    client (as wrk's), a few tens of µs per request where httpx costs about a millisecond."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def open(cls, url: str, partition: int, body: bytes) -> LeanHttp:
        host, _, port = url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (f"POST /v1/topics/{TOPIC}/partitions/{partition}/batches HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n")
        return cls(reader, writer, head.encode() + body)

    async def send(self) -> None:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head[9:12]
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await self.reader.readexactly(int(length.group(1)) if length else 0)
        if status != b"200":
            raise RuntimeError(f"produce answered {head[:64]!r}")

    def close(self) -> None:
        self.writer.close()


def _lean_http_worker(url: str, partition: int, batch: int, seconds: float,
                      _binary: bool) -> tuple[int, list[float], float]:
    body = bytes(batches.build_batch([(None, RECORD, [])] * batch, int(time.time() * 1000)))

    async def run() -> tuple[int, list[float]]:
        connections = [await LeanHttp.open(url, partition, body) for _ in range(CONCURRENCY)]
        free = list(connections)

        async def send() -> None:
            connection = free.pop()
            try:
                await connection.send()
            finally:
                free.append(connection)

        try:
            return await _closed_loop_tasks(send, batch, seconds)
        finally:
            for connection in connections:
                connection.close()

    return _timed(lambda: asyncio.run(run()))


# -- open-loop latency ---------------------------------------------------------------------------------------------

WARM_UP_S = 0.5  # requests scheduled in the first half second (connections still opening) are not counted


LATENESS_S: list[float] = []  # this process's open loop: how late each send started after it was due


async def _open_loop(send: Callable[[], Any], rate_records: float, batch: int, seconds: float) -> list[float]:
    """Start `send()` every batch / rate seconds regardless of answers; each latency runs from the moment the request
    was due, not from when the client got round to it, so a client that falls behind shows in the figures instead of
    hiding them (coordinated omission).

    The schedule is kept by a thread sleeping with `time.sleep` (nanosecond timers) and handing each due send to
    the event loop: the loop's own timers wake through epoll, whose timeout is in whole milliseconds, so sends
    paced by `asyncio.sleep` started 0.7 ms late at the median (hand-measured on 2026-12-07), and that lateness,
    the load generator's and not the broker's, was in every figure. How late each send still starts is kept in
    `LATENESS_S` and printed beside the row."""
    interval = batch / rate_records
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter() + 0.01

    async def one(due: float) -> None:
        if due - start >= WARM_UP_S:
            LATENESS_S.append(time.perf_counter() - due)
        await send()
        if due - start >= WARM_UP_S:
            latencies.append(time.perf_counter() - due)

    def pace() -> None:
        n = 0
        while (due := start + n * interval) - start < seconds:
            if (delay := due - time.perf_counter()) > 0:
                time.sleep(delay)
            loop.call_soon_threadsafe(lambda due=due: tasks.append(loop.create_task(one(due))))
            n += 1

    # The thread's last callbacks are queued before the one that ends this await, so every task is in `tasks`.
    await asyncio.to_thread(pace)
    await asyncio.gather(*tasks)
    return latencies


async def open_loop_http(url: str, rate_records: float, batch: int, seconds: float) -> list[float]:
    """Binary batches over httpx at a fixed rate; latency per request."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    body = bytes(batches.build_batch([(None, RECORD, [])] * batch, int(time.time() * 1000)))
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def send() -> None:
            response = await client.post(f"/v1/topics/{TOPIC}/partitions/0/batches", content=body)
            response.raise_for_status()

        return await _open_loop(send, rate_records, batch, seconds)


async def open_loop_lean_http(url: str, rate_records: float, batch: int, seconds: float) -> list[float]:
    """`open_loop_http` with `LeanHttp` connections (a pool: one request per connection at a time)."""
    body = bytes(batches.build_batch([(None, RECORD, [])] * batch, int(time.time() * 1000)))
    free: list[LeanHttp] = []
    opened: list[LeanHttp] = []

    async def send() -> None:
        connection = free.pop() if free else None
        if connection is None:
            connection = await LeanHttp.open(url, 0, body)
            opened.append(connection)
        await connection.send()
        free.append(connection)

    try:
        return await _open_loop(send, rate_records, batch, seconds)
    finally:
        for connection in opened:
            connection.close()


async def open_loop_grpc(target: str, rate_records: float, batch: int, seconds: float) -> list[float]:
    from goqueue.client.grpc_client import GrpcClient
    from goqueue.records import RecordIn

    records = [RecordIn(key=None, value=RECORD, headers=[])] * batch
    async with GrpcClient(target) as client:
        async def send() -> None:
            await client.produce(TOPIC, records, partition=0)

        return await _open_loop(send, rate_records, batch, seconds)


async def open_loop_grpc_stream(target: str, rate_records: float, batch: int, seconds: float) -> list[float]:
    """Binary batches on one ProduceBatchStream at a fixed rate; latency per batch."""
    from goqueue.client.grpc_batch_stream import BatchStream
    from goqueue.client.grpc_client import GrpcClient
    from goqueue.models import Acks

    body = bytes(batches.build_batch([(None, RECORD, [])] * batch, int(time.time() * 1000)))
    async with GrpcClient(target) as client:
        stream = BatchStream(client)

        async def send() -> None:
            await stream.send(TOPIC, 0, body, Acks.ALL, 30.0)

        try:
            return await _open_loop(send, rate_records, batch, seconds)
        finally:
            await stream.close()


async def open_loop_lean_grpc_stream(target: str, rate_records: float, batch: int, seconds: float) -> list[float]:
    """`open_loop_grpc_stream` with a `LeanGrpcStream`: the same batches, pre-serialised requests."""
    import grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stream = LeanGrpcStream(channel, lean_grpc_request(0, batch))
        await stream.open()
        try:
            return await _open_loop(stream.send, rate_records, batch, seconds)
        finally:
            await stream.close()


def _open_loop_worker(api: str, target: str, rate_records: float, batch: int,
                      seconds: float) -> tuple[list[float], list[float]]:
    run = {"http": open_loop_http, "lean-http": open_loop_lean_http, "grpc": open_loop_grpc,
           "grpc-stream": open_loop_grpc_stream, "lean-grpc-stream": open_loop_lean_grpc_stream}[api]
    LATENESS_S.clear()  # a pool process may run more than one task
    return asyncio.run(run(target, rate_records, batch, seconds)), LATENESS_S


def open_loop(api: str, target: str, rate_records: float, batch: int, seconds: float, clients: int) -> list[float]:
    """Latencies of an open-loop load of `rate_records` spread over `clients` processes, as many as the closed loop
    that found the maximum: one Python process alone cannot send what three did, and its own queue would be
    measured instead of the broker."""
    with mp.get_context("spawn").Pool(clients, initializer=_use_topic, initargs=(TOPIC,)) as pool:
        results = pool.starmap(_open_loop_worker, [(api, target, rate_records / clients, batch, seconds)] * clients)
    OPEN_LOOP_LATENESS_S[:] = sorted(x for r in results for x in r[1])
    return [x for r in results for x in r[0]]


OPEN_LOOP_LATENESS_S: list[float] = []  # the last open_loop's senders' lateness (`_open_loop`), sorted


def _burn(stop: Any) -> None:
    """The noisy neighbour: one process spinning on a core until told to stop."""
    n = 0
    while not stop.is_set():
        for _ in range(100_000):
            n += 1


def latency_rows(name: str, measure: Callable[[float], list[float]], best: float, noisy: bool,
                 disk: Path) -> None:
    """Open-loop latency at 50 % and 80 % of `best` rec/s (and at 50 % beside a process burning a core), each with
    the disk's own fdatasync latency in the same seconds (`DiskProbe`) printed under it."""
    runs = [("50 %", 0.5, False), ("80 %", 0.8, False)] + ([("50 %, noisy neighbour", 0.5, True)] if noisy else [])
    for label, share, burn in runs:
        stop = mp.get_context("spawn").Event()
        burner = mp.get_context("spawn").Process(target=_burn, args=(stop,)) if burn else None
        if burner is not None:
            burner.start()
        try:
            with DiskProbe(disk) as probe:
                lat = sorted(measure(best * share))
        finally:
            if burner is not None:
                stop.set()
                burner.join(10)
        print(f"{'latency ' + name + ' @ ' + format(best * share, ',.0f') + ' rec/s (' + label + '), batch 100':<40} "
              f"p50 {statistics.median(lat) * 1000:.2f} ms  p99 {percentile_ms(lat, 0.99):.2f} ms  "
              f"p99.9 {percentile_ms(lat, 0.999):.2f} ms", flush=True)
        late = OPEN_LOOP_LATENESS_S
        lateness = (f"senders late p50 {percentile_ms(late, 0.5):.2f} ms  p99 {percentile_ms(late, 0.99):.2f} ms"
                    if late else "senders' lateness: no sample")
        print(f"{'':<40} {probe.summary()}; {lateness}", flush=True)


# -- consume -------------------------------------------------------------------------------------------------------

def consume_http_binary(url: str, partition: int, limit: int) -> float:
    count, offset = 0, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        started = time.perf_counter()
        while count < limit:
            data = client.get(f"/v1/topics/{TOPIC}/partitions/{partition}/batches",
                              params={"offset": offset, "maxBytes": 4_000_000}).content
            if not data:
                break
            for pos, header in batches.iter_headers(data):
                records = batches.decode_records(data, pos)
                count += sum(1 for r in records if r.offset >= offset)
                offset = header.next_offset
        return count / (time.perf_counter() - started)


def consume_http_json(url: str, partition: int, limit: int) -> float:
    count, offset = 0, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        started = time.perf_counter()
        while count < limit:
            body = client.get(f"/v1/topics/{TOPIC}/partitions/{partition}/records",
                              params={"offset": offset, "maxRecords": 5000, "maxBytes": 4_000_000}).json()
            if not body["records"]:
                break
            count += len(body["records"])
            offset = body["nextOffset"]
        return count / (time.perf_counter() - started)


def consume_grpc(target: str, partition: int, limit: int) -> float:
    from goqueue.client.grpc_client import GrpcClient

    async def run() -> float:
        count, offset = 0, 0
        async with GrpcClient(target) as client:
            started = time.perf_counter()
            while count < limit:
                data = await client.fetch_batches(TOPIC, partition, offset, max_bytes=4_000_000)
                if not data:
                    break
                for pos, header in batches.iter_headers(data):
                    records = batches.decode_records(data, pos)
                    count += sum(1 for r in records if r.offset >= offset)
                    offset = header.next_offset
            return count / (time.perf_counter() - started)

    return asyncio.run(run())


# -- redis ---------------------------------------------------------------------------------------------------------

def redis_reference(root: Path, batch: int, clients: int, total: int) -> float | None:
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        print("redis-server/redis-benchmark missing (apt-get install redis-server): no reference", file=sys.stderr)
        return None
    port = free_port()
    data = root / f"redis-{batch}"
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
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-n", str(total), "-c", str(clients), "-P", str(batch), "-q",
             "XADD", "bench", "*", "v", RECORD.decode()], capture_output=True, text=True, check=True).stdout
        match = re.search(r"([\d.]+) requests per second", out.replace(",", ""))
        return float(match.group(1)) if match else None
    finally:
        server.terminate()
        server.wait(10)


def latency_section(args: argparse.Namespace, broker: Broker, grpc_target: str, root: Path) -> None:
    """Latency at half and 80 % of the maximum rate, batch 100, for every door and client."""
    best = max(closed_loop(_http_worker, args.clients, broker.url, 100, args.seconds, True)[0], 1.0)
    latency_rows("HTTP binary", lambda rate: open_loop("http", broker.url, rate, 100, args.seconds, args.clients),
                 best, args.noisy_neighbour, root)
    best = max(closed_loop(_lean_http_worker, args.clients, broker.url, 100, args.seconds, True)[0], 1.0)
    latency_rows("HTTP binary, lean client", lambda rate: open_loop("lean-http", broker.url, rate, 100,
                                                                     args.seconds, args.clients),
                 best, args.noisy_neighbour, root)
    if not args.skip_grpc:
        best = max(closed_loop(_grpc_worker, args.clients, grpc_target, 100, args.seconds, False)[0], 1.0)
        latency_rows("gRPC", lambda rate: open_loop("grpc", grpc_target, rate, 100, args.seconds, args.clients),
                     best, args.noisy_neighbour, root)
        best = max(closed_loop(_grpc_stream_worker, args.clients, grpc_target, 100, args.seconds, True)[0], 1.0)
        latency_rows("gRPC binary stream", lambda rate: open_loop("grpc-stream", grpc_target, rate, 100,
                                                                   args.seconds, args.clients),
                     best, args.noisy_neighbour, root)
        best = max(closed_loop(_lean_grpc_stream_worker, args.clients, grpc_target, 100, args.seconds, True)[0],
                   1.0)
        latency_rows("gRPC stream, lean client", lambda rate: open_loop("lean-grpc-stream", grpc_target, rate, 100,
                                                                         args.seconds, args.clients),
                     best, args.noisy_neighbour, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-grpc", action="store_true")
    parser.add_argument("--noisy-neighbour", action="store_true",
                        help="repeat the half-load latency runs while another process burns one core")
    parser.add_argument("--latency-only", action="store_true", help="only the latency runs (after one closed loop)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="goqueue-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    print(runinfo.header("GoQueue single-broker benchmark") + f" — data in {root}", flush=True)
    print(f"fdatasync ceiling (100 KB write + fdatasync): {fdatasync_ceiling(root):,.0f}/s\n")
    broker = Broker(root)
    rows: list[tuple[str, str]] = []
    try:
        httpx.post(broker.url + "/v1/topics", json={"name": TOPIC, "partitions": 4}).raise_for_status()
        grpc_target = f"127.0.0.1:{broker.grpc_port}"
        for batch in () if args.latency_only else (1, 100, 1000):
            for name, worker, extra in (
                ("HTTP JSON", _http_worker, (False,)),
                ("HTTP binary batch", _http_worker, (True,)),
                ("HTTP binary batch, lean client", _lean_http_worker, (True,)),
                *([] if args.skip_grpc else [("gRPC records", _grpc_worker, (False,)),
                                             ("gRPC binary batch", _grpc_worker, (True,)),
                                             ("gRPC binary batch stream", _grpc_stream_worker, (True,)),
                                             ("gRPC binary batch stream, lean client", _lean_grpc_stream_worker,
                                              (True,))]),
            ):
                target = grpc_target if worker in GRPC_WORKERS else broker.url
                cpu_before = broker.cpu_seconds()
                rate, p99 = closed_loop(worker, args.clients, target, batch, args.seconds, *extra)
                requests = max(rate * args.seconds / batch, 1)
                per_request = (broker.cpu_seconds() - cpu_before) / requests
                rows.append((f"produce {name}, batch {batch}", f"{rate:>12,.0f} rec/s  (closed-loop p99 "
                                                               f"{p99 * 1000:.1f} ms, CPU per request: broker "
                                                               f"{per_request * 1e6:,.0f} µs, clients "
                                                               f"{CLIENT_CPU_S[0] / requests * 1e6:,.0f} µs)"))
                print(f"{rows[-1][0]:<40} {rows[-1][1]}", flush=True)
            if not args.skip_redis:
                redis = redis_reference(root, batch, args.clients * CONCURRENCY, 200_000 if batch > 1 else 20_000)
                if redis is not None:
                    rows.append((f"Redis XADD appendfsync always, batch {batch}", f"{redis * 1:>12,.0f} rec/s"))
                    print(f"{rows[-1][0]:<40} {rows[-1][1]}", flush=True)
        latency_section(args, broker, grpc_target, root)
        if args.latency_only:
            return
        stored = httpx.get(broker.url + f"/v1/topics/{TOPIC}").json()["partitionDetails"][0]["highWatermark"]
        limit = min(stored, 2_000_000)
        print(f"{'consume HTTP binary (client decodes)':<40} {consume_http_binary(broker.url, 0, limit):>12,.0f} rec/s")
        print(f"{'consume HTTP JSON':<40} {consume_http_json(broker.url, 0, min(limit, 300_000)):>12,.0f} rec/s")
        if not args.skip_grpc:
            print(f"{'consume gRPC binary (client decodes)':<40} {consume_grpc(grpc_target, 0, limit):>12,.0f} rec/s")
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(runinfo.footer())


if __name__ == "__main__":
    main()
