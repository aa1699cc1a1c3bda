#!/usr/bin/env python3
"""Consumer-group benchmark (issue 4, item 9): consume-and-ack throughput and a redelivery run under load.

Against one real `goqueue-broker` (fsync=always: every lease, ack and commit is fdatasynced in
`__consumer_state` before the broker answers), 100-byte records preloaded into an 8-partition topic:

  * shared mode, 4 consumers: consume (lease) a page, ack its lease ids, repeat until the backlog is gone;
  * ordered mode, 4 members: join, consume the assigned partitions, commit after each page;
  * redelivery under load: shared mode, 4 consumers, a 2 s visibility timeout, and each page is dropped unacked
    with probability --drop (a consumer "crashing" mid-page). The run checks that every record is acked (none
    lost) and that every duplicate delivery happened only after the previous lease of that record had expired.

Usage: python bench/consumers.py [--records 40000] [--page 200] [--drop 0.05]
Prints a table; copy it into docs/PERFORMANCE.md with the date and the command.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import runinfo

TOPIC = "bench-consumers"
PARTITIONS = 8
CONSUMERS = 4
VALUE = "v" * 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A goqueue-broker process on loopback with its own data directory."""

    def __init__(self, root: Path, extra_env: dict[str, str]) -> None:
        ports = {free_port(), free_port(), free_port()}
        while len(ports) < 3:
            ports.add(free_port())
        self.port, grpc_port, raft_port = sorted(ports)
        env = {**os.environ, "GOQUEUE_BROKER_HOST": "127.0.0.1", "GOQUEUE_BROKER_PORT": str(self.port),
               "GOQUEUE_BROKER_GRPCPORT": str(grpc_port), "GOQUEUE_BROKER_RAFTPORT": str(raft_port),
               "GOQUEUE_BROKER_INTERNALPORT": str(free_port()),
               "GOQUEUE_STORAGE_DATADIR": str(root / "data"), "GOQUEUE_STORAGE_WALDIR": str(root / "wal"),
               "GOQUEUE_STORAGE_FSYNC": "always", "GOQUEUE_LOG_LEVEL": "warning", **extra_env}
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
        raise RuntimeError(f"broker did not become ready; see {root / 'broker.log'}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


async def preload(http: httpx.AsyncClient, records: int) -> None:
    response = await http.post("/v1/topics", json={"name": TOPIC, "partitions": PARTITIONS})
    response.raise_for_status()
    batch = 1000
    for start in range(0, records, batch):
        body = {"records": [{"key": str(n), "value": VALUE} for n in range(start, min(records, start + batch))]}
        (await http.post(f"/v1/topics/{TOPIC}/records", json=body)).raise_for_status()


@dataclass
class Stats:
    acked: set[int] = field(default_factory=set)
    deliveries: int = 0
    round_trips_s: list[float] = field(default_factory=list)
    # per record: list of (delivered_at_ms, lease_expires_at_ms)
    history: dict[int, list[tuple[int, int]]] = field(default_factory=dict)


async def shared_consumer(http: httpx.AsyncClient, group: str, name: str, total: int, page: int, drop: float,
                          stats: Stats, rng: random.Random) -> None:
    while len(stats.acked) < total:
        started = time.perf_counter()
        response = await http.post(f"/v1/groups/{group}/consume", json={
            "consumerId": name, "topic": TOPIC, "maxRecords": page, "waitMs": 500, "startFrom": "earliest"})
        if response.status_code == 429:  # inflight capacity reached: others must ack first
            continue
        response.raise_for_status()
        records = response.json()["records"]
        now_ms = int(time.time() * 1000)
        for record in records:
            stats.history.setdefault(int(record["key"]), []).append((now_ms, record["leaseExpiresAtMs"]))
        stats.deliveries += len(records)
        if not records:
            continue
        if drop and rng.random() < drop:
            continue  # this consumer "crashed" holding the page: the leases must expire and come back
        acked = await http.post(f"/v1/groups/{group}/ack", json={"leaseIds": [r["leaseId"] for r in records]})
        acked.raise_for_status()
        stats.acked.update(int(r["key"]) for r in records)
        stats.round_trips_s.append(time.perf_counter() - started)


async def ordered_member(http: httpx.AsyncClient, group: str, name: str, total: int, page: int,
                         stats: Stats, done: asyncio.Event) -> None:
    joined = (await http.post(f"/v1/groups/{group}/members", json={"clientId": name, "topics": [TOPIC]})).json()
    member, generation = joined["memberId"], joined["generation"]
    positions: list[dict[str, Any]] = []  # client-held read positions, as goqueue.client keeps them
    while not done.is_set():
        started = time.perf_counter()
        response = await http.post(f"/v1/groups/{group}/consume", json={
            "memberId": member, "generation": generation, "maxRecords": page, "waitMs": 200,
            "startFrom": "earliest", "positions": positions})
        if response.status_code == 409:  # another member joined: take the new generation
            rejoined = await http.post(f"/v1/groups/{group}/members",
                                       json={"memberId": member, "clientId": name, "topics": [TOPIC]})
            generation, positions = rejoined.json()["generation"], []  # from the committed offsets again
            continue
        response.raise_for_status()
        answer = response.json()
        held = {(p["topic"], p["partition"]): p for p in [*positions, *answer["positions"]]}
        positions = list(held.values())
        records = answer["records"]
        if not records:
            continue
        last: dict[int, int] = {}
        for record in records:
            last[record["partition"]] = record["offset"] + 1
        commit = await http.post(f"/v1/groups/{group}/offsets", json={
            "memberId": member, "generation": generation,
            "offsets": [{"topic": TOPIC, "partition": p, "offset": o} for p, o in last.items()]})
        if commit.status_code == 409:
            continue  # fenced: the new owner reads these again
        commit.raise_for_status()
        stats.acked.update(int(r["key"]) for r in records)
        stats.deliveries += len(records)
        stats.round_trips_s.append(time.perf_counter() - started)
        if len(stats.acked) >= total:
            done.set()
    await http.delete(f"/v1/groups/{group}/members/{member}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run_shared(url: str, records: int, page: int, drop: float, group: str) -> dict[str, Any]:
    stats = Stats()
    rng = random.Random(7)
    limits = httpx.Limits(max_connections=CONSUMERS * 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(shared_consumer(http, group, f"c{n}", records, page, drop, stats, rng)
                               for n in range(CONSUMERS)))
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "stats": stats}


async def run_ordered(url: str, records: int, page: int) -> dict[str, Any]:
    stats = Stats()
    done = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(ordered_member(http, "bench-ordered", f"m{n}", records, page, stats,
                                                               done) for n in range(CONSUMERS))), 600)
        elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "stats": stats}


def check_redelivery(stats: Stats, records: int) -> tuple[int, int, int]:
    """(lost, duplicate deliveries, duplicates delivered before the previous lease expired)."""
    lost = records - len(stats.acked & set(range(records)))
    duplicates = early = 0
    for deliveries in stats.history.values():
        for previous, current in itertools.pairwise(deliveries):
            duplicates += 1
            if current[0] < previous[1] - 50:  # 50 ms: the client stamps its receive time after the broker did
                early += 1
    return lost, duplicates, early


def row(label: str, records: int, result: dict[str, Any]) -> str:
    stats: Stats = result["stats"]
    rate = records / result["elapsed"]
    p50 = percentile(stats.round_trips_s, 0.5) * 1000
    p99 = percentile(stats.round_trips_s, 0.99) * 1000
    return f"| {label:<40} | {rate:>10,.0f} | {p50:>8.1f} | {p99:>8.1f} | {stats.deliveries:>10,} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=40_000)
    parser.add_argument("--page", type=int, default=200, help="records per consume request")
    parser.add_argument("--drop", type=float, default=0.05, help="share of pages dropped unacked (redelivery run)")
    args = parser.parse_args()
    print(runinfo.header("GoQueue consumer-group benchmark"), flush=True)
    root = Path(tempfile.mkdtemp(prefix="goqueue-bench-consumers-"))
    broker = Broker(root, {"GOQUEUE_CONSUMERS_VISIBILITYTIMEOUT": "2s", "GOQUEUE_CONSUMERS_INFLIGHTCAPACITY": "20000"})
    try:
        async with httpx.AsyncClient(base_url=broker.url, timeout=60) as http:
            await preload(http, args.records)
        shared = await run_shared(broker.url, args.records, args.page, 0.0, "bench-shared")
        ordered = await run_ordered(broker.url, args.records, args.page)
        redelivery = await run_shared(broker.url, args.records, args.page, args.drop, "bench-redelivery")
        lost, duplicates, early = check_redelivery(redelivery["stats"], args.records)
        print(f"\n{args.records:,} records of 100 B, {PARTITIONS} partitions, {CONSUMERS} consumers, pages of "
              f"{args.page}, fsync=always, one broker on {os.cpu_count()} CPUs\n")
        print("| run                                      |   records/s | rt p50 ms | rt p99 ms | deliveries |")
        print("|------------------------------------------|------------:|----------:|----------:|-----------:|")
        print(row("shared: consume + ack (4 consumers)", args.records, shared))
        print(row("ordered: consume + commit (4 members)", args.records, ordered))
        print(row(f"shared, {args.drop:.0%} of pages dropped (2 s lease)", args.records, redelivery))
        median_ms = statistics.median(shared["stats"].round_trips_s) * 1000
        print(f"\nredelivery run: {lost} lost, {duplicates:,} duplicate deliveries, {early} of them before the "
              f"previous lease expired; shared median round trip {median_ms:.1f} ms")
        if lost or early:
            raise SystemExit("FAILED: a record was lost or redelivered while its lease was still held")
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(runinfo.footer())


if __name__ == "__main__":
    asyncio.run(main())
