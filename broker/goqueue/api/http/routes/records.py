"""Produce and fetch over HTTP, as JSON (for people and scripts) and as binary record batches (for clients).

JSON produce: `POST /v1/topics/{topic}/records` with records whose key/value/header values are text in the
request's `encoding`. Binary produce: `POST /v1/topics/{topic}/partitions/{p}/batches` with one record batch
(`application/vnd.goqueue.batch`) built by the client, which the broker validates by CRC and stamps with offsets:
no per-record work on the broker at all.

Fetch mirrors both: `GET …/records` decodes to JSON; `GET …/batches` returns whole batches untouched, with the
high watermark and log start offset in headers. Both long-poll with `waitMs`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from goqueue import limits
from goqueue.api.adapter_rules import produce_request, records_for_client
from goqueue.api.http.auth import AUTH_ERRORS, require
from goqueue.api.http.body import CheckedBodyRoute
from goqueue.api.http.deps import BrokerDep, ForwardedDep, PartitionPath
from goqueue.api.http.errors import error_responses
from goqueue.broker import Broker
from goqueue.errors import (
    CorruptRecord,
    DiskFull,
    InvalidRequest,
    NotEnoughReplicas,
    NotLeader,
    NotReady,
    OffsetOutOfRange,
    OutOfOrderSequence,
    Overloaded,
    PartitionNotFound,
    PartitionOffline,
    RecordTooLarge,
    StorageError,
    Timeout,
    TopicNotFound,
    Unavailable,
)
from goqueue.models import (
    Acks,
    Encoding,
    FetchedRecord,
    FetchResponse,
    ProduceRequest,
    ProduceResponse,
    RecordOffset,
    choose_encoding,
    decode_text,
    encode_bytes,
    topic_name_problem,
    within,
)
from goqueue.records import ProducerIdentity, RecordIn
from goqueue.security.acls import Operation, ResourceType
from goqueue.storage.log import AppendResult

router = APIRouter(prefix="/v1/topics/{topic}", tags=["records"], route_class=CheckedBodyRoute,
                   responses=AUTH_ERRORS)

# The caller may do this to the topic (security.acls), checked here at the broker the client called.
_PRODUCER = [require(ResourceType.TOPIC, Operation.PRODUCE, "topic")]
_CONSUMER = [require(ResourceType.TOPIC, Operation.CONSUME, "topic")]
_DESCRIBER = [require(ResourceType.TOPIC, Operation.DESCRIBE, "topic")]

# A partition's leader answers (or the broker forwards to it, and relays what it answered).
_PARTITION = (TopicNotFound, PartitionNotFound, PartitionOffline, NotLeader, NotReady, Timeout, Unavailable)
_PRODUCE = error_responses(_PARTITION, RecordTooLarge, NotEnoughReplicas, OutOfOrderSequence, Overloaded, DiskFull,
                           StorageError)
_FETCH = error_responses(_PARTITION, OffsetOutOfRange, CorruptRecord, StorageError)
_MAX_BYTES = Query(alias="maxBytes", **within(limits.MAX_BYTES))
_WAIT_MS = Query(alias="waitMs", **within(limits.WAIT_MS))
_OFFSET = Query(**within(limits.OFFSET))

BATCH_MEDIA_TYPE = "application/vnd.goqueue.batch"


def _decode_records(request: ProduceRequest) -> list[RecordIn]:
    enc = request.encoding
    if enc is Encoding.UTF8:  # the common case, kept tight: ~1000 records per request
        return [RecordIn(None if r.key is None else r.key.encode(), None if r.value is None else r.value.encode(),
                         [(k, v.encode()) for k, v in r.headers.items()] if r.headers else [],
                         r.partition, r.timestamp_ms) for r in request.records]
    records = []
    try:
        for i, r in enumerate(request.records):
            records.append(RecordIn(
                key=decode_text(r.key, enc, f"records.{i}.key"),
                value=decode_text(r.value, enc, f"records.{i}.value"),
                headers=[(k, decode_text(v, enc, f"records.{i}.headers.{k}") or b"") for k, v in r.headers.items()],
                partition=r.partition, timestamp_ms=r.timestamp_ms))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    return records


@router.post("/records", response_model=ProduceResponse, summary="Produce a batch of records (JSON)",
             responses=_PRODUCE, dependencies=_PRODUCER)
async def produce(topic: str, body: ProduceRequest, broker: BrokerDep, forwarded: ForwardedDep) -> Response:
    with produce_request(broker.metrics, "http", topic):
        producer = None
        if body.producer_id is not None:
            if body.base_sequence is None or body.partition is None:
                raise InvalidRequest("an idempotent produce (producerId) needs baseSequence and partition")
            producer = ProducerIdentity(body.producer_id, body.producer_epoch, body.base_sequence)
        offsets, duplicate = await broker.produce(
            topic, _decode_records(body), acks=body.acks, partition=body.partition, producer=producer,
            forwarded=forwarded)
    response = ProduceResponse(
        topic=topic, offsets=[RecordOffset(partition=p, offset=o) for p, o in offsets], duplicate=duplicate)
    return Response(response.model_dump_json(), media_type="application/json")


@router.post("/partitions/{partition}/batches", summary="Produce one client-built record batch (binary)",
             response_model=ProduceResponse, responses=_PRODUCE, dependencies=_PRODUCER)
async def produce_batch(
    topic: str, partition: PartitionPath, request: Request, broker: BrokerDep, forwarded: ForwardedDep,
    acks: Acks = Acks.ALL,
) -> Response:
    # The common shape of this request is answered by `fast_produce.FastBatchProduce` before FastAPI routes it;
    # both call `append_binary_batch` after the same checks.
    declared = int(request.headers.get("content-length") or 0)
    answer = await append_binary_batch(broker, topic, partition, request.body, declared, acks, forwarded)
    return Response(answer, media_type="application/json")


async def append_binary_batch(broker: Broker, topic: str, partition: int, body: Callable[[], Awaitable[bytes]],
                              declared: int, acks: Acks, forwarded: bool) -> bytes:
    """The binary produce once its caller is authorized (both HTTP doors): the internal-topic guard and the
    produce metrics (`adapter_rules.produce_request`), the request size limit, the append; the answer's JSON."""
    with produce_request(broker.metrics, "http", topic):
        limit = broker.settings.limits.max_request_bytes
        if declared > limit:
            raise RecordTooLarge(f"request body is {declared} bytes; limits.maxRequestBytes is {limit}")
        batch = bytearray(await body())
        if len(batch) > limit:
            raise RecordTooLarge(f"request body is {len(batch)} bytes; limits.maxRequestBytes is {limit}")
        result = await broker.append_batch(topic, partition, batch, acks, forwarded=forwarded)
    return produce_answer(topic, partition, result)


def produce_answer(topic: str, partition: int, result: AppendResult) -> bytes:
    """`ProduceResponse(...).model_dump_json()` of a one-partition append, without a model per offset: the same
    bytes (tests/unit/test_fast_produce.py compares them), a tenth of the time for a batch of 100."""
    count = result.last_offset - result.base_offset + 1 if result.base_offset >= 0 else 0
    if topic_name_problem(topic) is not None:  # any other name was refused before an append; keep the model's escaping
        return ProduceResponse(topic=topic, duplicate=result.duplicate, offsets=[
            RecordOffset(partition=partition, offset=result.base_offset + n) for n in range(count)]).model_dump_json(
        ).encode()
    head = f'{{"partition":{partition},"offset":'
    offsets = ",".join(f"{head}{result.base_offset + n}}}" for n in range(count))
    duplicate = "true" if result.duplicate else "false"
    return f'{{"topic":"{topic}","offsets":[{offsets}],"duplicate":{duplicate}}}'.encode()


@router.get("/partitions/{partition}/records", response_model=FetchResponse, summary="Fetch records (JSON)",
            responses=_FETCH, dependencies=_CONSUMER)
async def fetch(
    topic: str,
    partition: PartitionPath,
    broker: BrokerDep,
    forwarded: ForwardedDep,
    offset: Annotated[int, _OFFSET] = 0,
    max_records: Annotated[int, Query(alias="maxRecords", **within(limits.MAX_RECORDS))] = 500,
    max_bytes: Annotated[int, _MAX_BYTES] = 1_048_576,
    wait_ms: Annotated[int, _WAIT_MS] = 0,
    encoding: Encoding | None = None,
) -> Response:
    result = await broker.fetch(topic, partition, offset, max_bytes, wait_ms / 1000, forwarded=forwarded)
    decoded, next_offset = records_for_client(topic, partition, result.data, offset, max_records)
    records = []
    for record in decoded:
        enc = encoding or choose_encoding(record.key, record.value, *(v for _, v in record.headers))
        records.append(FetchedRecord(
            topic=topic, partition=partition, offset=record.offset, timestamp_ms=record.timestamp_ms,
            key=encode_bytes(record.key, enc), value=encode_bytes(record.value, enc),
            headers={k: encode_bytes(v, enc) or "" for k, v in record.headers}, encoding=enc))
    broker.metrics.messages_fetched.labels(topic).inc(len(records))
    response = FetchResponse(topic=topic, partition=partition, records=records, next_offset=next_offset,
                             high_watermark=result.high_watermark, log_start_offset=result.log_start_offset)
    return Response(response.model_dump_json(), media_type="application/json")


@router.get("/partitions/{partition}/batches", summary="Fetch whole record batches (binary)",
            response_class=Response, responses={
                **_FETCH, 200: {"content": {BATCH_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}}},
            dependencies=_CONSUMER)
async def fetch_batches(
    topic: str,
    partition: PartitionPath,
    broker: BrokerDep,
    forwarded: ForwardedDep,
    offset: Annotated[int, _OFFSET] = 0,
    max_bytes: Annotated[int, _MAX_BYTES] = 1_048_576,
    wait_ms: Annotated[int, _WAIT_MS] = 0,
) -> Response:
    result = await broker.fetch(topic, partition, offset, max_bytes, wait_ms / 1000, forwarded=forwarded)
    return Response(result.data, media_type=BATCH_MEDIA_TYPE, headers={
        "X-GoQueue-High-Watermark": str(result.high_watermark),
        "X-GoQueue-Log-Start-Offset": str(result.log_start_offset),
        "X-GoQueue-Log-End-Offset": str(result.log_end_offset),
    })


@router.get("/partitions/{partition}/offsets", summary="Offset lookup: earliest, latest or by timestamp",
            responses=error_responses(_PARTITION), dependencies=_DESCRIBER)
async def offsets(
    topic: str,
    partition: PartitionPath,
    broker: BrokerDep,
    forwarded: ForwardedDep,
    timestamp_ms: Annotated[int | None, Query(alias="timestampMs", **within(limits.TIMESTAMP_MS))] = None,
) -> dict[str, int | None]:
    return await broker.partition_offsets_routed(topic, partition, timestamp_ms, forwarded=forwarded)
