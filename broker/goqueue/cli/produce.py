"""`goqueue-cli produce`'s sending: every line through one batching producer (`goqueue.client.producer`) over HTTP
binary batches, at most `batch` records per request; idempotent and retried through failovers until the delivery
timeout, as every client of the project produces."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from goqueue.client.auth import Credentials
from goqueue.client.delivery import DeliveryPolicy
from goqueue.client.http_batch_transport import HttpBatchTransport
from goqueue.client.producer import Producer, ProducerSettings
from goqueue.client.producer_queue import Acknowledgement
from goqueue.client.tls import ClientTls
from goqueue.errors import GoQueueError
from goqueue.models import RecordOffset
from goqueue.records import RecordIn

MAX_BATCH_BYTES = 4 * 2**20  # --batch decides a request's size; this only keeps one request reasonable


@dataclass(frozen=True)
class ProduceOptions:
    servers: str
    credentials: Credentials | None
    tls: ClientTls | None
    request_timeout_s: float
    delivery_timeout_s: float
    topic: str
    key: str | None
    headers: Mapping[str, str]
    partition: int | None
    batch: int


def produce_lines(options: ProduceOptions, lines: Iterable[str]) -> list[RecordOffset]:
    """Where each line was written, in order; raises the first error, saying how many lines were written."""
    return asyncio.run(_produce(options, lines))


async def _produce(options: ProduceOptions, lines: Iterable[str]) -> list[RecordOffset]:
    settings = ProducerSettings(batch_records=options.batch, batch_bytes=MAX_BATCH_BYTES,
                                delivery=DeliveryPolicy(timeout_s=options.delivery_timeout_s))
    key = options.key.encode() if options.key is not None else None
    headers = [(name, text.encode()) for name, text in options.headers.items()]
    futures: list[asyncio.Future[Acknowledgement]] = []
    transport = HttpBatchTransport(options.servers, options.request_timeout_s, credentials=options.credentials,
                                   tls=options.tls)
    async with Producer(transport, settings) as producer:
        for line in lines:
            futures.append(await producer.send(options.topic, RecordIn(key, line.encode(), headers,
                                                                       options.partition)))
    failed = [error for f in futures if (error := f.exception()) is not None]
    if failed:
        error = failed[0]
        if not isinstance(error, GoQueueError):
            raise error
        written = len(futures) - len(failed)
        raise type(error)(f"{error.message} ({written} of the {len(futures)} records were written)",
                          **error.details)
    return [RecordOffset(partition=f.result().partition, offset=f.result().offset) for f in futures]
