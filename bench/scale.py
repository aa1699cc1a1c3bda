#!/usr/bin/env python3
"""How GoQueue grows with partitions (issue 18, item 6): one broker with 10, 100 and 1,000 partitions, then three
brokers holding 1,000 partitions x replication factor 3 (3,000 replicas; `--cluster-partitions` for other sizes).

For each size, fsync=always, 100-byte records:
  * start-up: process start → /readyz (an empty broker; for the cluster, all three);
  * topic create → usable: the create call, then until every partition acknowledged a produce (the batching
    producer over gRPC, one record per partition, retried while partitions come up);
  * metadata change latency with the partitions in place: `--creates` more one-partition topics, each create →
    usable, median and last (a step that grows with the metadata shows here as the sizes go up);
  * produce throughput spread over all partitions: 3 client processes x 4 in flight, gRPC binary batches of 100,
    each request to the next partition of the client's share (through its leader in the cluster), closed loop;
  * RSS of each broker process after the produce;
  * recovery after SIGKILL: the broker (in the cluster, broker 2) restarted on its data → /readyz, and in the
    cluster also → back in every ISR.

Usage: python bench/scale.py [--partitions 10,100,1000] [--cluster-partitions 1000] [--seconds 4] [--creates 10]
                             [--skip-cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import runinfo
from broker_process import BrokerProcess
from cluster_process import LocalCluster

from goqueue.client.grpc_batch_transport import GrpcBatchTransport
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.producer import Producer
from goqueue.records import RecordIn
from goqueue.storage import batch as batches

RECORD = b"v" * 100
TOPIC = "scale"
ENV = {"GOQUEUE_STORAGE_FSYNC": "always", "GOQUEUE_LOG_LEVEL": "warning"}
CLIENTS, IN_FLIGHT, BATCH = 3, 4, 100
START_TIMEOUT_S = 600.0


def row(name: str, figure: str) -> None:
    print(f"  {name:<52} {figure}", flush=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _usable(targets: list[str], topic: str, partitions: int) -> None:
    """Every partition acknowledges a produce (the producer retries NOT_LEADER, NOT_READY … until it does)."""
    async with Producer(GrpcBatchTransport(targets)) as producer:
        futures = [await producer.send(topic, RecordIn(None, RECORD, [], p)) for p in range(partitions)]
        await asyncio.gather(*futures)


def create_to_usable(http: httpx.Client, targets: list[str], topic: str, partitions: int,
                     replication: int) -> tuple[float, float]:
    """(seconds of the create call, seconds from the call until every partition took a produce)."""
    started = time.perf_counter()
    http.post("/v1/topics", json={"name": topic, "partitions": partitions,
                                  "replicationFactor": replication}, timeout=300).raise_for_status()
    created = time.perf_counter() - started
    asyncio.run(_usable(targets, topic, partitions))
    return created, time.perf_counter() - started


def more_creates(http: httpx.Client, targets: list[str], count: int, replication: int, tag: str) -> str:
    usable = [create_to_usable(http, targets, f"more-{tag}-{i}", 1, replication)[1] for i in range(count)]
    return f"median {statistics.median(usable) * 1000:7.1f} ms, last {usable[-1] * 1000:7.1f} ms"


def _worker(assignment: list[tuple[str, int]], seconds: float) -> int:
    """Closed loop, IN_FLIGHT requests at a time, each a batch of BATCH to the next (target, partition)."""
    body = bytes(batches.build_batch([(None, RECORD, [])] * BATCH, int(time.time() * 1000)))

    async def run() -> int:
        clients = {target: GrpcClient(target) for target, _ in assignment}
        turn = itertools.cycle(assignment)
        sent = 0
        end = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal sent
            while time.perf_counter() < end:
                target, partition = next(turn)
                await clients[target].produce_batch(TOPIC, partition, body)
                sent += BATCH

        try:
            await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
        finally:
            for client in clients.values():
                await client.close()
        return sent

    return asyncio.run(run())


def spread_produce(leaders: list[str], seconds: float) -> float:
    """Records/s over all partitions; `leaders[p]` is partition p's gRPC target."""
    shares = [[(leaders[p], p) for p in range(i, len(leaders), CLIENTS)] for i in range(CLIENTS)]
    with mp.get_context("spawn").Pool(CLIENTS) as pool:
        sent = pool.starmap(_worker, [(share, seconds) for share in shares if share])
    return sum(sent) / seconds


def one_broker(root: Path, partitions: int, args: argparse.Namespace) -> None:
    print(f"\n## one broker, {partitions} partitions", flush=True)
    broker = BrokerProcess(root / f"one-{partitions}", env=ENV)
    try:
        row("start-up (empty) → ready", f"{timed(lambda: broker.start(START_TIMEOUT_S)):8.2f} s")
        with httpx.Client(base_url=broker.url, timeout=60) as http:
            created, usable = create_to_usable(http, [broker.grpc_target], TOPIC, partitions, 1)
            row(f"topic create ({partitions} partitions): call / → usable", f"{created:8.2f} s / {usable:.2f} s")
            row(f"{args.creates} more 1-partition topics, create → usable",
                more_creates(http, [broker.grpc_target], args.creates, 1, str(partitions)))
        rate = spread_produce([broker.grpc_target] * partitions, args.seconds)
        row(f"produce over all {partitions} partitions, batch {BATCH}", f"{rate:>10,.0f} rec/s")
        row("RSS after the produce", f"{rss_mib(broker.pid):8.1f} MiB")
        broker.kill()
        row("recovery after SIGKILL → ready", f"{timed(lambda: broker.start(START_TIMEOUT_S)):8.2f} s")
        row("RSS after recovery", f"{rss_mib(broker.pid):8.1f} MiB")
    finally:
        if broker.running:
            broker.stop()


def all_in_sync(cluster: LocalCluster, via: int, partitions: int) -> bool:
    with cluster.client(via) as http:
        details = http.get(f"/v1/topics/{TOPIC}", timeout=60).json()["partitionDetails"]
    return len(details) == partitions and all(len(p["isr"]) == 3 for p in details)


def three_brokers(root: Path, partitions: int, args: argparse.Namespace) -> None:
    print(f"\n## three brokers, {partitions} partitions x RF 3 = {3 * partitions} replicas", flush=True)
    cluster = LocalCluster(root / f"cluster-{partitions}", env=ENV)
    try:
        row("start-up (empty, three brokers) → all ready", f"{timed(lambda: cluster.start(START_TIMEOUT_S)):8.2f} s")
        targets = [b.grpc_target for b in cluster.brokers]
        with cluster.client(0) as http:
            created, usable = create_to_usable(http, targets, TOPIC, partitions, 3)
            row(f"topic create ({partitions} x RF 3): call / → usable", f"{created:8.2f} s / {usable:.2f} s")
            row(f"{args.creates} more 1-partition RF 3 topics, create → usable",
                more_creates(http, targets, args.creates, 3, "cluster"))
            details = http.get(f"/v1/topics/{TOPIC}", timeout=60).json()["partitionDetails"]
        leaders = [cluster.brokers[p["leader"]].grpc_target for p in details]
        rate = spread_produce(leaders, args.seconds)
        row(f"produce over all {partitions} partitions, batch {BATCH}, acks=all", f"{rate:>10,.0f} rec/s")
        row("RSS after the produce, brokers 0 / 1 / 2",
            " / ".join(f"{rss_mib(b.pid):.1f}" for b in cluster.brokers) + " MiB")
        cluster.brokers[2].kill()
        started = time.perf_counter()
        cluster.brokers[2].start(START_TIMEOUT_S)
        row("recovery of broker 2 after SIGKILL → ready", f"{time.perf_counter() - started:8.2f} s")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all_in_sync(cluster, 0, partitions) and time.monotonic() < deadline:
            time.sleep(0.5)
        row("… → back in every ISR", f"{time.perf_counter() - started:8.2f} s")
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=lambda text: [int(n) for n in text.split(",")], default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--creates", type=int, default=10)
    parser.add_argument("--cluster-partitions", type=lambda text: [int(n) for n in text.split(",")], default=[1000],
                        help="partitions (x RF 3) of each 3-broker run, comma-separated")
    parser.add_argument("--skip-cluster", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="goqueue-scale-", dir=os.environ.get("BENCH_DIR", "/var/tmp")))
    print(runinfo.header("GoQueue scale curve") + f" — data in {root}", flush=True)
    try:
        for partitions in args.partitions:
            one_broker(root, partitions, args)
        for partitions in [] if args.skip_cluster else args.cluster_partitions:
            three_brokers(root, partitions, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(runinfo.footer())


if __name__ == "__main__":
    main()
