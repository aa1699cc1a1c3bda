#!/usr/bin/env python3
"""GoQueue load generator: produce at a rate while consumer groups read, then report throughput and latency
percentiles, and whether every acknowledged record was consumed exactly once, in order.

    python deploy/testing/load/goqueue_load.py --server http://goqueue.goqueue.svc:8080 \\
        --rate 2000 --duration 60 --record-size 512 --batch 100 --acks all --producers 4 --consumers 4

Runs against any GoQueue cluster (`--server a,b,c`, repeatable, or GOQUEUE_SERVER: each client starts at a
different address and moves to the next when one cannot be reached; any broker serves any request) with the
project's client (`goqueue.client`: the batching producer over HTTP binary batches, the HTTP client for the rest),
so `pip install goqueue` is all it needs. On a cluster with anonymous access off (every operator-run cluster) it
authenticates as the CLIs do, from GOQUEUE_USER and GOQUEUE_PASSWORD_FILE. SIGTERM or Ctrl-C stops producing
early; the consumers still drain and the report is printed.

What it measures:
  * produce: records/s and MB/s achieved against the target --rate, and the latency of each produce request
    (request sent → acknowledged with --acks), as p50/p90/p95/p99/p99.9/max;
  * consume: records/s, redeliveries, and end-to-end latency (produced → delivered to a consumer), from a timestamp
    header each record carries (one clock: run the tool as one process);
  * loss: every (partition, offset) acknowledged to a producer must be delivered to the group before the end
    (up to --verify-max records); missing ones make the exit code 1. Run it during a chaos script to check that
    killing, pausing or filling a broker loses no acknowledged message;
  * exactly once, in order: each record carries an id (producer, sequence); one id stored at two offsets (a retry
    written twice) is a duplicate, and a producer's ids going backwards within a partition are out of order. Either
    makes the exit code 1.

A fresh consumer group (`goqueue-load-<random>` unless --group) starts at the end of the topic before producing, so
it reads exactly this run's records; it is deleted afterwards unless --keep-group, and its consumers leave it when
they stop. Producers are the client's batching idempotent producers (`goqueue.client.producer`), each --batch
records sent together and awaited: a request is retried after retriable errors (NOT_LEADER, NOT_ENOUGH_REPLICAS,
UNAVAILABLE …) and connection failures, through failovers, for up to --delivery-timeout, and a
retry of a write that did land is answered with its offsets instead of being written twice. When the achieved rate
is below --rate the cluster (or this client: one Python process manages a few thousand requests/s) is saturated;
run several copies for more.

Exit codes: 0 all good; 1 produce requests failed (after retries), acknowledged records were not consumed or were
duplicated or reordered, or the consumers did not catch up within --drain-timeout; 2 bad arguments, or the cluster
refused the set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from goqueue.client.auth import Credentials
from goqueue.client.bootstrap import parse_servers
from goqueue.client.delivery import DEFAULT_DELIVERY_TIMEOUT_S, DeliveryPolicy
from goqueue.client.http import GoQueueClient
from goqueue.client.http_batch_transport import HttpBatchTransport
from goqueue.client.producer import Producer, ProducerSettings
from goqueue.errors import FencedGeneration, GoQueueError, TopicAlreadyExists, UnknownMember
from goqueue.models import Acks, ConsumeRequest, GroupMode, GroupSpec, OffsetCommit, TopicCreate
from goqueue.records import RecordIn

T = TypeVar("T")
SENT_HEADER = "goqueue-load-sent-ns"
ID_HEADER = "goqueue-load-id"  # "<producer>-<sequence>": what the exactly-once and order checks follow
SAMPLES_MAX = 200_000        # latency samples kept per histogram (reservoir): bounded memory on long runs
BACKOFF_S = (0.05, 2.0)      # consumers: first and largest backoff after an error
CONSUME_WAIT_MS = 500        # long-poll of each consume request
MAX_BATCH_BYTES = 64 * 2**20  # --batch decides a request's size
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}


@dataclass(frozen=True)
class LoadConfig:
    servers: tuple[str, ...]
    topic: str = "goqueue-load"
    partitions: int = 8
    replication_factor: int = 3
    create_topic: bool = True
    rate: float = 1000.0          # records per second over all producers; 0 = as fast as possible
    duration_s: float = 30.0
    record_size: int = 256        # bytes of each record's value
    batch: int = 100              # records per produce request
    acks: str = "all"
    producers: int = 2
    consumers: int = 2
    group: str = ""
    mode: str = "shared"
    keep_group: bool = False
    drain_timeout_s: float = 60.0
    setup_timeout_s: float = 60.0  # set-up and clean-up calls retry retriable errors this long
    verify_max: int = 1_000_000
    seed: int = 0
    delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S
    credentials: Credentials | None = None  # GOQUEUE_USER + GOQUEUE_PASSWORD_FILE, as the CLIs read them


class Samples:
    """Latencies in seconds; a uniform reservoir of at most SAMPLES_MAX, so percentiles stay honest on long runs."""

    def __init__(self, seed: int) -> None:
        self._values: list[float] = []
        self._seen = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seen += 1
            if len(self._values) < SAMPLES_MAX:
                self._values.append(seconds)
            else:
                slot = self._random.randrange(self._seen)
                if slot < SAMPLES_MAX:
                    self._values[slot] = seconds

    def summary(self) -> dict[str, float]:
        with self._lock:
            values = sorted(self._values)
        if not values:
            return {}
        found = {name: values[min(len(values) - 1, int(q * len(values)))] for name, q in PERCENTILES.items()}
        return {**found, "max": values[-1], "mean": sum(values) / len(values), "count": float(self._seen)}


@dataclass
class Stats:
    """Shared by every thread; counters under one lock (a few thousand updates a second at most)."""

    seed: int
    produced: int = 0
    produced_bytes: int = 0
    produce_requests: int = 0
    produce_retries: int = 0      # resends by the idempotent producers
    produce_failed: int = 0       # produce calls given up: non-retriable error, or the delivery timeout passed
    consumed: int = 0
    redelivered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    acked: dict[int, set[int]] = field(default_factory=dict)      # partition → offsets acknowledged to producers
    delivered: dict[int, set[int]] = field(default_factory=dict)  # partition → offsets delivered to consumers
    placed: dict[str, set[tuple[int, int]]] = field(default_factory=dict)  # record id → (partition, offset) seen
    verify: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.produce_latency = Samples(self.seed)
        self.end_to_end_latency = Samples(self.seed + 1)

    def error(self, where: str, exc: GoQueueError) -> None:
        with self.lock:
            self.errors[f"{where}:{exc.code}"] += 1


def produce_loop(cfg: LoadConfig, index: int, stats: Stats, started: float, stop: threading.Event) -> None:
    """Open loop at rate / producers records a second: batch k is sent at started + k * batch / rate."""
    asyncio.run(_produce(cfg, index, stats, started, stop))


async def _produce(cfg: LoadConfig, index: int, stats: Stats, started: float, stop: threading.Event) -> None:
    per_producer_rate = cfg.rate / cfg.producers if cfg.rate > 0 else 0.0
    value = b"x" * cfg.record_size
    end = started + cfg.duration_s
    settings = ProducerSettings(acks=Acks(cfg.acks), batch_records=cfg.batch, batch_bytes=MAX_BATCH_BYTES,
                                delivery=DeliveryPolicy(timeout_s=cfg.delivery_timeout_s))
    producer = Producer(HttpBatchTransport(rotated(cfg.servers, index), credentials=cfg.credentials), settings)
    try:
        k = 0
        while not stop.is_set():
            due = started + (k * cfg.batch / per_producer_rate if per_producer_rate else 0.0)
            # Every batch due before the end is sent, late or not: dropping the late ones would hide the latency
            # (a failover's) that made them late. Without a rate: as many as fit before the end.
            if due >= end or (not per_producer_rate and time.monotonic() >= end):
                break
            if (pause := due - time.monotonic()) > 0:
                await asyncio.sleep(pause)
                if stop.is_set():
                    break
            sent_ns = str(time.time_ns()).encode()
            records = [RecordIn(None, value, [(SENT_HEADER, sent_ns),
                                              (ID_HEADER, f"{index}-{k * cfg.batch + i}".encode())])
                       for i in range(cfg.batch)]
            await _produce_batch(producer, cfg, records, stats)
            k += 1
    finally:
        await producer.close()
        with stats.lock:
            stats.produce_retries += producer.retries


def rotated(servers: tuple[str, ...], index: int) -> list[str]:
    """Every address, starting at a different one per client: load spreads, and each can move on to the others."""
    start = index % len(servers)
    return [*servers[start:], *servers[:start]]


async def _produce_batch(producer: Producer, cfg: LoadConfig, records: list[RecordIn], stats: Stats) -> None:
    """--batch records sent together and awaited: the batching producer sends them as one request."""
    begun = time.monotonic()
    futures = [await producer.send(cfg.topic, record) for record in records]
    await asyncio.wait(futures)
    failed = [error for f in futures if (error := f.exception()) is not None]
    if failed:  # the producer retried what can be retried, for up to the delivery timeout
        for error in {id(e): e for e in failed}.values():
            stats.error("produce", error if isinstance(error, GoQueueError) else GoQueueError(str(error)))
        with stats.lock:
            stats.produce_failed += 1
        return
    stats.produce_latency.add(time.monotonic() - begun)
    with stats.lock:
        stats.produced += len(records)
        stats.produced_bytes += len(records) * cfg.record_size
        stats.produce_requests += 1
        if stats.verify and cfg.acks != "0":
            for future in futures:
                placed = future.result()
                stats.acked.setdefault(placed.partition, set()).add(placed.offset)
            stats.verify = stats.produced <= cfg.verify_max


def consume_loop(cfg: LoadConfig, index: int, stats: Stats, stop: threading.Event) -> None:
    consumer_id = f"goqueue-load-{index}-{secrets.token_hex(3)}"
    with GoQueueClient(rotated(cfg.servers, index), credentials=cfg.credentials) as client:  # leaves the group
        member: tuple[str, int] | None = None
        member_id: str | None = None
        while not stop.is_set():
            try:
                if cfg.mode == "ordered":
                    member = member or _join(client, cfg, consumer_id, member_id)
                    member_id = member[0]
                    _consume_ordered(client, cfg, member, stats)
                else:
                    _consume_shared(client, cfg, consumer_id, stats)
            except FencedGeneration:
                member = None  # a rebalance: join the new generation as the same member
            except UnknownMember:
                member, member_id = None, None  # our session expired: join as a new member
            except GoQueueError as exc:
                stats.error("consume", exc)
                time.sleep(BACKOFF_S[0] if exc.retriable else 1.0)
        if member is not None:
            client.leave_group(cfg.group, member[0])


def _join(client: GoQueueClient, cfg: LoadConfig, consumer_id: str, member_id: str | None) -> tuple[str, int]:
    joined = client.join_group(cfg.group, [cfg.topic], member_id=member_id, client_id=consumer_id)
    return joined.member_id, joined.generation


def _consume_shared(client: GoQueueClient, cfg: LoadConfig, consumer_id: str, stats: Stats) -> None:
    response = client.consume(cfg.group, ConsumeRequest(consumer_id=consumer_id, topic=cfg.topic,
                                                        max_records=cfg.batch, wait_ms=CONSUME_WAIT_MS))
    _account(response.records, stats)
    leases = [r.lease_id for r in response.records if r.lease_id]
    if leases:
        client.ack(cfg.group, leases)


def _consume_ordered(client: GoQueueClient, cfg: LoadConfig, member: tuple[str, int], stats: Stats) -> None:
    member_id, generation = member
    response = client.consume(cfg.group, ConsumeRequest(member_id=member_id, generation=generation,
                                                        max_records=cfg.batch, wait_ms=CONSUME_WAIT_MS))
    _account(response.records, stats)
    ends: dict[int, int] = {}
    for record in response.records:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    if ends:
        client.commit(cfg.group, [OffsetCommit(topic=cfg.topic, partition=p, offset=o) for p, o in ends.items()],
                      member_id=member_id, generation=generation)


def _account(records: Sequence[Any], stats: Stats) -> None:
    now_ns = time.time_ns()
    for record in records:
        sent = record.headers.get(SENT_HEADER)
        if sent is not None:
            stats.end_to_end_latency.add((now_ns - int(sent)) / 1e9)
    with stats.lock:
        stats.consumed += len(records)
        stats.redelivered += sum(1 for r in records if getattr(r, "delivery_count", 1) > 1)
        for record in records:
            stats.delivered.setdefault(record.partition, set()).add(record.offset)
            if stats.verify and (record_id := record.headers.get(ID_HEADER)) is not None:
                stats.placed.setdefault(record_id, set()).add((record.partition, record.offset))


def duplicated_records(stats: Stats) -> int:
    """Records delivered at more than one offset: written twice."""
    with stats.lock:
        return sum(1 for places in stats.placed.values() if len(places) > 1)


def out_of_order_records(stats: Stats) -> int:
    """Records delivered at an offset below an earlier record of the same producer in the same partition."""
    with stats.lock:
        stored = sorted((partition, offset, record_id) for record_id, places in stats.placed.items()
                        for partition, offset in places)
    last: dict[tuple[int, str], int] = {}
    behind = 0
    for partition, _, record_id in stored:
        producer, _, sequence = record_id.rpartition("-")
        key = (partition, producer)
        if int(sequence) < last.get(key, -1):
            behind += 1
        last[key] = max(last.get(key, -1), int(sequence))
    return behind


def missing_records(stats: Stats) -> int:
    """Acknowledged records never delivered to the group."""
    with stats.lock:
        return sum(len(offsets - stats.delivered.get(p, set())) for p, offsets in stats.acked.items())


def retrying(cfg: LoadConfig, call: Callable[[], T], what: str) -> T:
    """Set-up and clean-up calls survive a broker restarting (retriable errors) for up to --setup-timeout."""
    deadline = time.monotonic() + cfg.setup_timeout_s
    while True:
        try:
            return call()
        except GoQueueError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            print(f"goqueue-load: {what}: {exc.code}, retrying", file=sys.stderr)
            time.sleep(1.0)


def prepare(cfg: LoadConfig) -> None:
    """The topic (created if asked and missing) and a group that starts at the topic's end."""
    with GoQueueClient(cfg.servers, credentials=cfg.credentials) as client:
        if cfg.create_topic:
            with contextlib.suppress(TopicAlreadyExists):  # a topic of an earlier run is reused
                retrying(cfg, lambda: client.create_topic(TopicCreate(
                    name=cfg.topic, partitions=cfg.partitions, replication_factor=cfg.replication_factor)),
                    "create topic")
        if cfg.consumers:
            retrying(cfg, lambda: client.declare_group(cfg.group, GroupSpec(mode=GroupMode(cfg.mode),
                                                                            topics=[cfg.topic])), "declare group")


def run(cfg: LoadConfig, stop_producing: threading.Event | None = None) -> dict[str, Any]:
    """One run; `stop_producing` ends the produce phase early (SIGTERM, Ctrl-C)."""
    stats = Stats(cfg.seed)
    stop_producing = stop_producing or threading.Event()
    prepare(cfg)
    stop = threading.Event()
    consumers = [threading.Thread(target=consume_loop, args=(cfg, i, stats, stop), name=f"consumer-{i}", daemon=True)
                 for i in range(cfg.consumers)]
    for thread in consumers:
        thread.start()
    started = time.monotonic()
    producers = [threading.Thread(target=produce_loop, args=(cfg, i, stats, started, stop_producing),
                                  name=f"producer-{i}", daemon=True) for i in range(cfg.producers)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join()
    produce_s = time.monotonic() - started
    if not stop_producing.is_set():
        produce_s = max(produce_s, cfg.duration_s)  # the last batch is due before the end
    drain_deadline = time.monotonic() + cfg.drain_timeout_s
    while cfg.consumers and time.monotonic() < drain_deadline and (
            missing_records(stats) if stats.verify else stats.consumed < stats.produced):
        time.sleep(0.1)
    consume_s = time.monotonic() - started
    stop.set()
    for thread in consumers:
        thread.join(timeout=CONSUME_WAIT_MS / 1000 + 30)
    if cfg.consumers and not cfg.keep_group:
        with GoQueueClient(cfg.servers, credentials=cfg.credentials) as client:
            retrying(cfg, lambda: client.delete_group(cfg.group, force=True), "delete group")
    return report(cfg, stats, produce_s, consume_s)


def report(cfg: LoadConfig, stats: Stats, produce_s: float, consume_s: float) -> dict[str, Any]:
    verified = stats.verify and cfg.consumers > 0 and cfg.acks != "0"
    return {
        "config": asdict(cfg),
        "produce": {
            "records": stats.produced, "bytes": stats.produced_bytes, "requests": stats.produce_requests,
            "retries": stats.produce_retries, "failed_requests": stats.produce_failed, "seconds": round(produce_s, 3),
            "records_per_s": round(stats.produced / produce_s, 1) if produce_s else 0.0,
            "mb_per_s": round(stats.produced_bytes / produce_s / 1e6, 3) if produce_s else 0.0,
            "target_records_per_s": cfg.rate, "latency_s": stats.produce_latency.summary(),
        },
        "consume": {
            "records": stats.consumed, "redelivered": stats.redelivered, "seconds": round(consume_s, 3),
            "records_per_s": round(stats.consumed / consume_s, 1) if consume_s and cfg.consumers else 0.0,
            "end_to_end_latency_s": stats.end_to_end_latency.summary(),
        },
        "errors": dict(stats.errors),
        "verified": verified,
        "missing_acknowledged_records": missing_records(stats) if verified else None,
        "duplicated_records": duplicated_records(stats) if verified else None,
        "out_of_order_records": out_of_order_records(stats) if verified else None,
        "drained": cfg.consumers == 0 or stats.consumed >= stats.produced,
    }


def render(result: dict[str, Any]) -> str:
    def line(name: str, latency: dict[str, float]) -> str:
        if not latency:
            return f"  {name:<22} (no samples)"
        cells = "  ".join(f"{k} {latency[k] * 1000:8.2f}" for k in (*PERCENTILES, "max"))
        return f"  {name:<22} ms  {cells}"

    produce, consume = result["produce"], result["consume"]
    missing = result["missing_acknowledged_records"]
    return "\n".join([
        f"produce  {produce['records']} records in {produce['seconds']} s: {produce['records_per_s']} records/s "
        f"(target {produce['target_records_per_s'] or 'max'}), {produce['mb_per_s']} MB/s, "
        f"{produce['requests']} requests, {produce['retries']} retries, {produce['failed_requests']} failed",
        line("produce latency", produce["latency_s"]),
        f"consume  {consume['records']} records ({consume['redelivered']} redelivered): "
        f"{consume['records_per_s']} records/s",
        line("end-to-end latency", consume["end_to_end_latency_s"]),
        f"errors   {result['errors'] or 'none'} (retried errors are expected while brokers restart)",
        "loss     " + ("not checked" if missing is None else
                       "none: every acknowledged record was consumed" if missing == 0 else
                       f"{missing} acknowledged records were NOT consumed"),
        "once     " + ("not checked" if missing is None else
                       "yes: no record written twice, none out of order"
                       if not (result["duplicated_records"] or result["out_of_order_records"]) else
                       f"{result['duplicated_records']} records written twice, "
                       f"{result['out_of_order_records']} out of order"),
    ])


def parse_args(argv: Sequence[str]) -> tuple[LoadConfig, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--server", "-s", action="append", help="broker URL(s), comma-separated or repeated (default: "
        "GOQUEUE_SERVER); each client starts at another and moves on when one cannot be reached")
    add("--topic", default="goqueue-load")
    add("--partitions", type=int, default=8, help="when the topic is created")
    add("--replication-factor", type=int, default=3, help="when the topic is created")
    add("--no-create-topic", action="store_true", help="the topic must exist")
    add("--rate", type=float, default=1000.0, help="records/s over all producers; 0 = as fast as possible")
    add("--duration", type=float, default=30.0, help="seconds of producing")
    add("--record-size", type=int, default=256, help="bytes of each record's value")
    add("--batch", type=int, default=100, help="records per produce request (and most per consume)")
    add("--acks", choices=["all", "1", "0"], default="all")
    add("--producers", type=int, default=2, help="producer threads")
    add("--consumers", type=int, default=2, help="consumer threads (0: produce only)")
    add("--group", default="", help="consumer group (default: a fresh goqueue-load-<random>)")
    add("--mode", choices=["shared", "ordered"], default="shared", help="the group's mode")
    add("--keep-group", action="store_true", help="do not delete the group at the end")
    add("--drain-timeout", type=float, default=60.0, help="seconds consumers get to catch up after producing")
    add("--setup-timeout", type=float, default=60.0, help="seconds set-up calls retry while brokers restart")
    add("--verify-max", type=int, default=1_000_000, help="check for loss up to this many records")
    add("--seed", type=int, default=0)
    add("--delivery-timeout", type=float, default=DEFAULT_DELIVERY_TIMEOUT_S,
        help="seconds a produce is retried through failovers before it counts as failed")
    add("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    servers = args.server or ([os.environ["GOQUEUE_SERVER"]] if os.environ.get("GOQUEUE_SERVER") else [])
    try:
        args.server = parse_servers(servers)
    except ValueError:
        parser.error("give --server (or set GOQUEUE_SERVER)")
    for name in ("partitions", "replication_factor", "record_size", "batch", "producers", "verify_max"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate < 0 or args.duration <= 0 or args.consumers < 0 or args.delivery_timeout <= 0:
        parser.error("--rate must be >= 0, --duration > 0, --consumers >= 0, --delivery-timeout > 0")
    group = args.group or f"goqueue-load-{secrets.token_hex(4)}"
    credentials = None
    if user := os.environ.get("GOQUEUE_USER"):  # a secured cluster: the CLIs' variables
        password_file = os.environ.get("GOQUEUE_PASSWORD_FILE")
        if not password_file:
            parser.error("GOQUEUE_USER needs GOQUEUE_PASSWORD_FILE (a file holding the password)")
        credentials = Credentials(user, Path(password_file).read_text().strip())
    return LoadConfig(servers=tuple(args.server), topic=args.topic, partitions=args.partitions,
                      replication_factor=args.replication_factor, create_topic=not args.no_create_topic,
                      rate=args.rate, duration_s=args.duration, record_size=args.record_size, batch=args.batch,
                      acks=args.acks, producers=args.producers, consumers=args.consumers, group=group,
                      mode=args.mode, keep_group=args.keep_group, drain_timeout_s=args.drain_timeout,
                      setup_timeout_s=args.setup_timeout, verify_max=args.verify_max, seed=args.seed,
                      delivery_timeout_s=args.delivery_timeout, credentials=credentials), args.json


def main(argv: Sequence[str] | None = None) -> int:
    cfg, as_json = parse_args(sys.argv[1:] if argv is None else argv)
    stop_producing = threading.Event()
    for stop in (signal.SIGTERM, signal.SIGINT):  # stop early, still drain and report
        signal.signal(stop, lambda *_: stop_producing.set())
    try:
        result = run(cfg, stop_producing)
    except GoQueueError as exc:
        print(f"goqueue-load: {exc.code}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if as_json else render(result))
    failed = (result["produce"]["failed_requests"] > 0 or bool(result["missing_acknowledged_records"])
              or bool(result["duplicated_records"]) or bool(result["out_of_order_records"]) or not result["drained"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
