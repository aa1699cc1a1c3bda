"""Crash durability: SIGKILL a real broker during continuous acknowledged writes, restart it, lose nothing.

Several producer threads write over HTTP (fsync `always`, small segments so the log rolls), each remembering every
record the broker acknowledged. The broker is killed mid-stream, three times; after each restart every partition is
read back from offset 0 up to its high watermark and must hold every acknowledged record at its offset with its
value, each producer's records in the order it sent them, offsets contiguous, and only whole records that some
producer really sent (an unacknowledged write may or may not survive, but never half of one).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest
from broker_process import BrokerProcess

if TYPE_CHECKING:
    from broker_process import BrokerFactory

pytestmark = pytest.mark.integration

TOPIC = "crashy"
PARTITIONS = 3
PRODUCERS = 4
KILLS = 3
ACKS_PER_ROUND = 400
SEGMENT_BYTES = 65536
PADDING = "p" * 180  # ~200-byte values: a few thousand records roll 64 KiB segments several times
VALUE = re.compile(r"^(?P<producer>\d+)-(?P<seq>\d+)-" + PADDING + "$")
WAIT_S = 60.0


@dataclass
class Acked:
    """Every record the broker acknowledged: (partition, offset) → value, and each producer's send order."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    records: dict[tuple[int, int], str] = field(default_factory=dict)

    def add(self, pairs: list[tuple[int, int, str]]) -> None:
        with self.lock:
            for partition, offset, value in pairs:
                assert self.records.setdefault((partition, offset), value) == value, (
                    f"two acknowledged records at {partition}/{offset}")

    def __len__(self) -> int:
        with self.lock:
            return len(self.records)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s waiting for {what}"
        time.sleep(0.02)


class Producer(threading.Thread):
    """Sends batches of 1-20 records until the broker stops answering; records what was acknowledged."""

    def __init__(self, number: int, url: str, acked: Acked, first_seq: int) -> None:
        super().__init__(name=f"producer-{number}", daemon=True)
        self.number = number
        self.url = url
        self.acked = acked
        self.seq = first_seq
        self.error: str | None = None

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as http:
            while True:
                count = 1 + (self.seq * 7 + self.number) % 20
                values = [f"{self.number}-{self.seq + i}-{PADDING}" for i in range(count)]
                try:
                    response = http.post(f"/v1/topics/{TOPIC}/records",
                                         json={"records": [{"value": v} for v in values]})
                except httpx.TransportError:
                    return  # the broker was killed: this request is unacknowledged
                if response.status_code != 200:
                    self.error = f"produce answered {response.status_code}: {response.text[:300]}"
                    return
                offsets = response.json()["offsets"]
                self.acked.add([(o["partition"], o["offset"], v) for o, v in zip(offsets, values, strict=True)])
                self.seq += count


def read_partition(http: httpx.Client, partition: int) -> list[tuple[int, str]]:
    """Every (offset, value) from offset 0 up to the high watermark, as a consumer reads them."""
    found: list[tuple[int, str]] = []
    offset = 0
    while True:
        body = http.get(f"/v1/topics/{TOPIC}/partitions/{partition}/records",
                        params={"offset": offset, "maxRecords": 1000}).raise_for_status().json()
        found.extend((r["offset"], r["value"]) for r in body["records"])
        assert body["nextOffset"] >= offset
        if body["nextOffset"] == body["highWatermark"] or not body["records"]:
            assert body["nextOffset"] == body["highWatermark"], f"stuck at {offset} below the high watermark"
            return found
        offset = body["nextOffset"]


def check_log(http: httpx.Client, acked: Acked) -> int:
    """Assert the promises for every partition; returns the number of records stored."""
    stored = 0
    for partition in range(PARTITIONS):
        records = read_partition(http, partition)
        offsets = [offset for offset, _ in records]
        assert offsets == list(range(len(records))), f"partition {partition}: offsets are not contiguous from 0"
        last_seq: dict[str, int] = {}
        for offset, value in records:
            match = VALUE.match(value or "")
            assert match, f"partition {partition} offset {offset}: a record nobody sent: {value!r:.80}"
            producer, seq = match["producer"], int(match["seq"])
            assert seq > last_seq.get(producer, -1), f"partition {partition}: producer {producer} out of order"
            last_seq[producer] = seq
        by_offset = dict(records)
        with acked.lock:
            mine = {o: v for (p, o), v in acked.records.items() if p == partition}
        missing = sorted(o for o in mine if o not in by_offset)
        assert not missing, f"partition {partition}: acknowledged offsets lost: {missing[:10]} ({len(missing)})"
        wrong = [o for o, v in mine.items() if by_offset[o] != v]
        assert not wrong, f"partition {partition}: acknowledged offsets hold other values: {wrong[:10]}"
        stored += len(records)
    return stored


def produce_then_kill(broker: BrokerProcess, acked: Acked, round_number: int) -> None:
    before = len(acked)
    producers = [Producer(n, broker.url, acked, first_seq=round_number * 10**6) for n in range(PRODUCERS)]
    for producer in producers:
        producer.start()
    wait_until(lambda: len(acked) >= before + ACKS_PER_ROUND or not any(p.is_alive() for p in producers),
               WAIT_S, f"{ACKS_PER_ROUND} acknowledged records")
    assert all(p.is_alive() for p in producers), [p.error for p in producers]
    broker.kill()  # mid-stream: every producer has a request in flight or about to be
    for producer in producers:
        producer.join(WAIT_S)
        assert not producer.is_alive(), f"{producer.name} still running after the broker died"
        assert producer.error is None, producer.error


def test_acknowledged_records_survive_repeated_sigkill(broker_factory: BrokerFactory) -> None:
    broker = broker_factory("crash", env={
        "GOQUEUE_STORAGE_SEGMENTBYTES": str(SEGMENT_BYTES),
        "GOQUEUE_STORAGE_FSYNC": "always",
        "GOQUEUE_BROKER_GRPCPORT": "0",  # HTTP only: the durability path is the same for both APIs
    })
    with httpx.Client(base_url=broker.url, timeout=30.0) as http:
        created = http.post("/v1/topics", json={"name": TOPIC, "partitions": PARTITIONS})
        assert created.status_code in (200, 201), created.text
    acked = Acked()

    for round_number in range(KILLS):
        produce_then_kill(broker, acked, round_number)
        broker.start()
        with httpx.Client(base_url=broker.url, timeout=30.0) as http:
            stored = check_log(http, acked)
        assert stored >= len(acked)

    segments = sorted(broker.data_dir.glob(f"{TOPIC}-*/*.log"))
    assert len(segments) > PARTITIONS, "the log never rolled: the test did not cross a segment boundary"
    assert len(acked) >= KILLS * ACKS_PER_ROUND
