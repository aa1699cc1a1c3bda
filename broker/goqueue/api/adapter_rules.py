"""What the HTTP routes and the gRPC servicer do alike, written once so the two doors cannot drift apart.

* The broker's internal topics (`__consumer_state`) are its own: no client creates, alters, deletes or writes them.
  Deleting one would drop every group's offsets and leases (found by the gRPC fuzz run, which deleted it); a stray
  record in it would corrupt them.
* Every produce request is timed the same way: `goqueue_message_latency_seconds{api="http"|"grpc"}` and the p99
  window, from request received to acknowledged, successful requests only.
* Fetched batches are decoded for a client in one way: a stored batch that fails its CRC is `CorruptRecord`
  (DATA_LOSS) naming the topic, partition and offsets lost, and the records around it stay readable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from goqueue.consumers.state_store import is_internal, refuse_internal_write
from goqueue.errors import CorruptRecord, InvalidTopicName
from goqueue.metrics import BrokerMetrics
from goqueue.storage import batch as batches

log = logging.getLogger(__name__)


def refuse_internal_topic(name: str) -> None:
    """Topic administration (create, alter, delete) refuses the broker's internal topics."""
    if is_internal(name):
        raise InvalidTopicName(f"topic names starting with '__' are reserved for the broker's internal topics "
                               f"({name!r})")


@contextmanager
def produce_request(metrics: BrokerMetrics, api: Literal["http", "grpc"], topic: str) -> Iterator[None]:
    """Around one produce request: refuse an internal topic, then time the request if it succeeds."""
    started = time.perf_counter()
    refuse_internal_write(topic)
    yield
    metrics.observe_produce(api, time.perf_counter() - started)


def records_for_client(topic: str, partition: int, data: bytes, offset: int,
                       max_records: int) -> tuple[list[batches.Record], int]:
    """`batches.records_from` for a fetch answer; a corrupt stored batch becomes `CorruptRecord`."""
    try:
        return batches.records_from(data, offset, max_records)
    except batches.CorruptBatch as exc:
        first, last = exc.header.base_offset, exc.header.last_offset
        log.error("fetch.corrupt_batch", extra={"topic": topic, "partition": partition, "first_offset": first,
                                                "last_offset": last, "reason": str(exc)})
        raise CorruptRecord(
            f"{topic}/{partition}: the stored batch of offsets {first}-{last} failed its CRC32C check on read: the "
            f"partition leader's copy of these records is corrupt on disk; the records before and after them are "
            f"intact (fetch from offset {last + 1} to read past them)",
            topic=topic, partition=partition, offset=first, lastOffset=last) from exc
