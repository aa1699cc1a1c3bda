"""A real three-broker GoQueue cluster on loopback: each broker its own process and its own 127.0.0.x address.

    cluster = LocalCluster(tmp_path, size=3).start()      # waits until every broker is ready
    cluster.url(0), cluster.leader_of("t", 0), cluster.brokers[1].kill(), cluster.restart(1)

Brokers find each other through `cluster.peers` (host:raftPort, index = broker id) with a Raft password, exactly
as the StatefulSet configures them. `History` records what producers got acknowledged and checks consumers saw it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from broker_process import BrokerProcess

from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError
from goqueue.models import ProduceRecord

PASSWORD = "test-cluster-password"
PRODUCE_TIMEOUT_S = 5.0     # per request: a frozen broker is left for the next one after this
DELIVERY_TIMEOUT_S = 90.0   # per produce call, through every retry


def password_files(root: Path, passwords: Mapping[str, str]) -> Path:
    """One file per user holding its password (what --password-file and security.adminPasswordFile read)."""
    for name, password in passwords.items():
        (root / name).write_text(password + "\n")
    return root


def secured_env(secrets_dir: Path, admin: str = "admin") -> dict[str, str]:
    """Anonymous access off, `admin` the configured administrator with its password in `secrets_dir/<admin>`."""
    return {"GOQUEUE_SECURITY_ALLOWANONYMOUS": "false", "GOQUEUE_SECURITY_ADMINUSER": admin,
            "GOQUEUE_SECURITY_ADMINPASSWORDFILE": str(secrets_dir / admin)}


class LocalCluster:
    def __init__(self, root: Path, size: int = 3, env: dict[str, str] | None = None) -> None:
        self.brokers = [BrokerProcess(root / f"broker-{i}", host=f"127.0.0.{i + 2}") for i in range(size)]
        peers = ",".join(f"{b.host}:{b.raft_port}" for b in self.brokers)
        for i, broker in enumerate(self.brokers):
            broker.extra_env.update({"GOQUEUE_BROKER_ID": str(i), "GOQUEUE_CLUSTER_PEERS": peers,
                                     "GOQUEUE_CLUSTER_PASSWORD": PASSWORD,
                                     "GOQUEUE_REPLICATION_PREFERREDLEADERDELAY": "2s",
                                     "GOQUEUE_REPLICATION_REPLICALAGMAX": "3s", **(env or {})})

    @classmethod
    def of(cls, brokers: list[BrokerProcess]) -> LocalCluster:
        """A cluster of brokers configured by the caller (e.g. each in a network namespace of its own)."""
        cluster = cls.__new__(cls)
        cluster.brokers = brokers
        return cluster

    def start(self, timeout_s: float = 60) -> LocalCluster:
        """Start every broker and wait until each is ready. When one is not (no quorum, a crash), every broker is
        killed before the error propagates: the fixture that called this has no teardown yet."""
        try:
            for broker in self.brokers:
                broker.start(wait_ready=False)
            for broker in self.brokers:
                broker.wait_ready(timeout_s)
        except BaseException:
            for broker in self.brokers:
                broker.kill()
            raise
        return self

    def url(self, broker_id: int) -> str:
        return self.brokers[broker_id].url

    def running(self) -> list[int]:
        return [i for i, b in enumerate(self.brokers) if b.running]

    def client(self, broker_id: int | None = None) -> httpx.Client:
        target = broker_id if broker_id is not None else self.running()[0]
        return httpx.Client(base_url=self.url(target), timeout=30)

    def partition(self, topic: str, partition: int, via: int | None = None) -> dict[str, Any]:
        with self.client(via) as http:
            details = http.get(f"/v1/topics/{topic}").json()["partitionDetails"]
        found: dict[str, Any] = details[partition]
        return found

    def leader_of(self, topic: str, partition: int, via: int | None = None) -> int | None:
        leader = self.partition(topic, partition, via)["leader"]
        return None if leader is None else int(leader)

    def restart(self, broker_id: int) -> None:
        self.brokers[broker_id].start()

    def stop(self) -> list[int]:
        return [b.stop() for b in self.brokers]


def wait_until(predicate: Callable[[], bool], timeout_s: float, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if predicate():
                return
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            pass  # a broker restarting or electing: keep polling until the deadline
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout_s:.0f}s")
        time.sleep(0.1)


@dataclass
class History:
    """Acknowledged writes, and the check that the log holds them at their offsets — and, for idempotent producers,
    each exactly once and in order.

    Values are `<producer tag>-<n>`, n counting up per producer, so the log itself shows a duplicate (one value at
    two offsets: a retry written twice) and a reordering (a producer's n going down within a partition)."""

    acked: dict[int, dict[int, str]] = field(default_factory=dict)  # partition -> offset -> value
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, offsets: list[dict[str, int]], values: list[str]) -> None:
        with self.lock:
            for offset, value in zip(offsets, values, strict=True):
                slot = self.acked.setdefault(offset["partition"], {})
                assert offset["offset"] not in slot, f"offset {offset} acknowledged twice"
                slot[offset["offset"]] = value

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.acked.values())

    def count_of(self, tag: str) -> int:
        """Records of one producer acknowledged so far."""
        with self.lock:
            return sum(1 for slot in self.acked.values() for value in slot.values() if value.startswith(f"{tag}-"))

    def check(self, consumed: dict[int, list[tuple[int, str]]], exactly_once: bool = False) -> None:
        """Every acknowledged record is consumed at its offset; offsets are strictly increasing. With `exactly_once`
        (for idempotent producers) also: no value is in the log twice, and each producer's records are in the
        order it sent them, per partition. (A producer that resends without idempotence may duplicate.)"""
        for partition, records in consumed.items():
            offsets = [o for o, _ in records]
            assert offsets == sorted(set(offsets)), f"partition {partition}: offsets not monotonic/unique"
            if exactly_once:
                _check_once_in_order(partition, records)
        for partition, acked in self.acked.items():
            seen = dict(consumed.get(partition, []))
            missing = {o: v for o, v in acked.items() if seen.get(o) != v}
            assert not missing, (f"partition {partition}: {len(missing)} acknowledged records lost or changed, "
                                 f"e.g. {sorted(missing.items())[:5]}")


def _check_once_in_order(partition: int, records: list[tuple[int, str]]) -> None:
    twice = sorted(v for v, times in Counter(v for _, v in records).items() if times > 1)
    assert not twice, f"partition {partition}: {len(twice)} records written twice, e.g. {twice[:5]}"
    last: dict[str, int] = {}
    for offset, value in records:
        tag, _, n = value.rpartition("-")
        if not n.isdigit():
            continue  # not a History producer's record
        assert int(n) > last.get(tag, -1), f"partition {partition}: {value} at {offset} after {tag}-{last[tag]}"
        last[tag] = int(n)


def consume_all(http: httpx.Client, topic: str, partitions: int,
                timeout_s: float = 30) -> dict[int, list[tuple[int, str]]]:
    """Every record of every partition; retriable errors (a leadership change in flight) are retried."""
    result: dict[int, list[tuple[int, str]]] = {}
    deadline = time.monotonic() + timeout_s
    for partition in range(partitions):
        offset, records = 0, []
        while True:
            body = http.get(f"/v1/topics/{topic}/partitions/{partition}/records",
                            params={"offset": offset, "maxRecords": 5000}).json()
            if body.get("error", {}).get("retriable") and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            assert "records" in body, f"{topic}/{partition} at offset {offset}: {body}"
            records.extend((r["offset"], r["value"]) for r in body["records"])
            if body["nextOffset"] >= body["highWatermark"]:
                break
            offset = body["nextOffset"]
        result[partition] = records
    return result


class Producer(threading.Thread):
    """Produces numbered records (`<tag>-<n>`) with acks=all until stopped, through the project's HTTP client given
    every broker's address: idempotent, retried through failovers (`goqueue.client`). An error that reaches this
    loop is one the client gave up on — a failure of the test's subject, recorded in `history.errors`."""

    def __init__(self, cluster: LocalCluster, topic: str, history: History, name: str, batch: int = 10) -> None:
        super().__init__(daemon=True)
        self.cluster, self.topic, self.history, self.tag, self.batch = cluster, topic, history, name, batch
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        servers = [self.cluster.url(i) for i in range(len(self.cluster.brokers))]
        with GoQueueClient(servers, timeout_s=PRODUCE_TIMEOUT_S, delivery_timeout_s=DELIVERY_TIMEOUT_S) as client:
            n = 0
            while not self.stopping.is_set():
                values = [f"{self.tag}-{n + i}" for i in range(self.batch)]
                try:
                    response = client.produce(self.topic, [ProduceRecord(value=v) for v in values])
                except GoQueueError as exc:
                    self.history.errors.append(f"{exc.code}: {exc.message}")
                    time.sleep(0.05)
                    continue
                self.history.record([o.model_dump() for o in response.offsets], values)
                n += self.batch
                self.sent = n
