"""Protobuf messages ⇄ domain values (`goqueue.models`, `goqueue.broker.RecordIn`, `ProducerIdentity`), both ways.

The servicer converts requests with the `*_from_proto` functions and answers with the `*_to_proto` ones; the gRPC
client uses the reverse pairs. Conversions validate what protobuf cannot express (negative partitions, unknown enum
values, out-of-range producer fields) and raise `InvalidRequest`, so bad input gets the same error over both APIs.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from goqueue import limits
from goqueue.api.adapter_rules import records_for_client
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.errors import GoQueueError, InvalidConfig, InvalidRequest, error_for_code
from goqueue.models import (
    Acks,
    CleanupPolicy,
    PartitionInfo,
    ProduceResponse,
    TopicConfig,
    TopicCreate,
    TopicInfo,
    TopicSetting,
    TopicUpdate,
)
from goqueue.records import FetchResult, ProducerIdentity, RecordIn
from goqueue.storage import batch as batches
from goqueue.storage.batch import Record

MAX_RECORDS_PER_REQUEST = limits.MAX_RECORDS_PER_REQUEST  # as the HTTP API's ProduceRequest
DEFAULT_MAX_RECORDS = 500
DEFAULT_MAX_BYTES = 1_048_576

ACKS_FROM_PROTO = {pb.ACKS_UNSPECIFIED: Acks.ALL, pb.ACKS_ALL: Acks.ALL, pb.ACKS_LEADER: Acks.ONE,
                   pb.ACKS_NONE: Acks.NONE}
ACKS_TO_PROTO = {Acks.ALL: pb.ACKS_ALL, Acks.ONE: pb.ACKS_LEADER, Acks.NONE: pb.ACKS_NONE}
CLEANUP_FROM_PROTO = {pb.CLEANUP_POLICY_DELETE: CleanupPolicy.DELETE, pb.CLEANUP_POLICY_COMPACT: CleanupPolicy.COMPACT}
CLEANUP_TO_PROTO = {policy: number for number, policy in CLEANUP_FROM_PROTO.items()}
# TopicConfig fields whose proto field is `optional` and has the same name (absent = broker default / unchanged).
OPTIONAL_CONFIG_FIELDS = tuple(name for name in TopicConfig.model_fields if name != "cleanup_policy")


# -- validation helpers -------------------------------------------------------------------------------------------


def in_range(value: int, bounds: limits.Range, what: str) -> int:
    """`value` when it is within `bounds` (the same `goqueue.limits` range the HTTP models use), else
    INVALID_REQUEST naming the field."""
    problem = bounds.problem(value, what)
    if problem is not None:
        raise InvalidRequest(problem)
    return value


def partition_index(value: int, what: str = "partition") -> int:
    return in_range(value, limits.PARTITION, what)


def acks_from_proto(value: int) -> Acks:
    try:
        return ACKS_FROM_PROTO[value]
    except KeyError:
        raise InvalidRequest(f"acks: unknown value {value}") from None


def invalid_model(what: str, exc: ValidationError, error: type[InvalidRequest] = InvalidRequest) -> InvalidRequest:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    return error(f"{what}{'.' + location if location else ''}: {first.get('msg', 'invalid value')}")


# -- topics ---------------------------------------------------------------------------------------------------------


def config_changes_from_proto(config: Any) -> dict[str, object]:
    """The present fields of a proto TopicConfig, keyed by the model's aliases (what `Broker.update_topic` merges)."""
    changes: dict[str, object] = {}
    if config.cleanup_policy != pb.CLEANUP_POLICY_UNSPECIFIED:
        policy = CLEANUP_FROM_PROTO.get(config.cleanup_policy)
        if policy is None:
            raise InvalidConfig(f"config.cleanup_policy: unknown value {config.cleanup_policy}")
        changes["cleanupPolicy"] = policy.value
    for name in OPTIONAL_CONFIG_FIELDS:
        if config.HasField(name):
            changes[TopicConfig.model_fields[name].alias or name] = getattr(config, name)
    return changes


def topic_config_from_proto(config: Any) -> TopicConfig:
    try:
        return TopicConfig.model_validate(config_changes_from_proto(config))
    except ValidationError as exc:
        raise invalid_model("config", exc, InvalidConfig) from exc


def topic_config_to_proto(config: TopicConfig) -> Any:
    present = {name: value for name in OPTIONAL_CONFIG_FIELDS if (value := getattr(config, name)) is not None}
    return pb.TopicConfig(cleanup_policy=CLEANUP_TO_PROTO[config.cleanup_policy], **present)


def topic_create_from_proto(request: Any) -> TopicCreate:
    config = topic_config_from_proto(request.config)
    fields: dict[str, Any] = {"name": request.name, "config": config}
    for name in ("partitions", "replication_factor"):
        if request.HasField(name):
            fields[name] = getattr(request, name)
    try:
        return TopicCreate.model_validate(fields)
    except ValidationError as exc:
        raise invalid_model("CreateTopicRequest", exc) from exc


def topic_create_to_proto(spec: TopicCreate) -> Any:
    return pb.CreateTopicRequest(name=spec.name, partitions=spec.partitions,
                                 replication_factor=spec.replication_factor,
                                 config=topic_config_to_proto(spec.config))


def config_changes_to_proto(changes: dict[str, Any]) -> Any:
    """A TopicUpdate's config changes (aliases or field names; sizes and durations with units) as a proto
    TopicConfig carrying exactly the changed fields."""
    try:
        parsed = TopicConfig.model_validate(changes)
    except ValidationError as exc:
        raise invalid_model("config", exc, InvalidConfig) from exc
    message = pb.TopicConfig()
    for name in parsed.model_fields_set:
        value = getattr(parsed, name)
        if name == "cleanup_policy":
            message.cleanup_policy = CLEANUP_TO_PROTO[value]
        elif value is not None:
            setattr(message, name, value)
    return message


def topic_update_to_proto(name: str, update: TopicUpdate) -> Any:
    request = pb.UpdateTopicRequest(name=name, config=config_changes_to_proto(update.config or {}))
    if update.partitions is not None:
        request.partitions = update.partitions
    return request


def topic_update_from_proto(request: Any) -> TopicUpdate:
    fields: dict[str, Any] = {"config": config_changes_from_proto(request.config) or None}
    if request.HasField("partitions"):
        fields["partitions"] = request.partitions
    try:
        return TopicUpdate.model_validate(fields)
    except ValidationError as exc:
        raise invalid_model("UpdateTopicRequest", exc) from exc


def partition_info_to_proto(info: PartitionInfo) -> Any:
    message = pb.PartitionInfo(
        partition=info.partition, start_offset=info.start_offset, end_offset=info.end_offset,
        high_watermark=info.high_watermark, size_bytes=info.size_bytes, segments=info.segments,
        replicas=info.replicas, isr=info.isr, online=info.online)
    if info.leader is not None:
        message.leader = info.leader
    if info.problem is not None:
        message.problem = info.problem
    return message


def partition_info_from_proto(message: Any) -> PartitionInfo:
    return PartitionInfo(
        partition=message.partition, start_offset=message.start_offset, end_offset=message.end_offset,
        high_watermark=message.high_watermark, size_bytes=message.size_bytes, segments=message.segments,
        leader=message.leader if message.HasField("leader") else None, replicas=list(message.replicas),
        isr=list(message.isr), online=message.online,
        problem=message.problem if message.HasField("problem") else None)


def topic_to_proto(info: TopicInfo) -> Any:
    return pb.Topic(
        name=info.name, partitions=info.partitions, replication_factor=info.replication_factor,
        config=topic_config_to_proto(info.config), size_bytes=info.size_bytes, messages=info.messages,
        partition_details=[partition_info_to_proto(p) for p in info.partition_details],
        settings=[pb.TopicSetting(key=s.key, value=s.value, source=s.source, broker_key=s.broker_key,
                                  note=s.note) for s in info.settings])


def topic_from_proto(message: Any) -> TopicInfo:
    return TopicInfo(
        name=message.name, partitions=message.partitions, replication_factor=message.replication_factor,
        config=topic_config_from_proto(message.config), size_bytes=message.size_bytes, messages=message.messages,
        partition_details=[partition_info_from_proto(p) for p in message.partition_details],
        settings=[TopicSetting(key=s.key, value=s.value, source=s.source,
                               broker_key=s.broker_key if s.HasField("broker_key") else None,
                               note=s.note if s.HasField("note") else None) for s in message.settings])


# -- produce --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProduceCall:
    """A decoded ProduceRequest: the arguments of `Broker.produce`."""

    topic: str
    records: list[RecordIn]
    partition: int | None
    acks: Acks
    producer: ProducerIdentity | None


def records_from_proto(records: Sequence[Any]) -> list[RecordIn]:
    """Proto records → `RecordIn`s. The hot path of gRPC produce: one pass, presence checks only, and the rare
    per-record partition or timestamp validated afterwards."""
    decoded: list[RecordIn] = []
    append = decoded.append
    for record in records:
        has = record.HasField
        append(RecordIn(
            record.key if has("key") else None,
            record.value if has("value") else None,
            [(header.key, header.value) for header in record.headers] if record.headers else [],
            record.partition if has("partition") else None,
            record.timestamp_ms if has("timestamp_ms") else None))
    for position, record_in in enumerate(decoded):
        if record_in.partition is not None:
            partition_index(record_in.partition, f"records.{position}.partition")
        if record_in.timestamp_ms is not None:
            in_range(record_in.timestamp_ms, limits.TIMESTAMP_MS, f"records.{position}.timestamp_ms")
    return decoded


def producer_from_proto(message: Any) -> ProducerIdentity:
    return ProducerIdentity(in_range(message.producer_id, limits.PRODUCER_ID, "producer.producer_id"),
                            in_range(message.producer_epoch, limits.PRODUCER_EPOCH, "producer.producer_epoch"),
                            in_range(message.base_sequence, limits.BASE_SEQUENCE, "producer.base_sequence"))


def produce_from_proto(request: Any) -> ProduceCall:
    partition = partition_index(request.partition) if request.HasField("partition") else None
    if len(request.records) > MAX_RECORDS_PER_REQUEST:
        raise InvalidRequest(f"at most {MAX_RECORDS_PER_REQUEST} records per request, got {len(request.records)}")
    producer = None
    if request.HasField("producer"):
        producer = producer_from_proto(request.producer)
        if partition is None:
            raise InvalidRequest("an idempotent produce (producer) needs partition")
        if producer.base_sequence + len(request.records) - 1 > limits.INT32_MAX:
            raise InvalidRequest(f"producer.base_sequence plus the record count exceeds {limits.INT32_MAX}")
    return ProduceCall(
        topic=request.topic, records=records_from_proto(request.records),
        partition=partition, acks=acks_from_proto(request.acks), producer=producer)


def record_to_proto(record: RecordIn) -> Any:
    # None for an optional field leaves it absent (a null key or value), which is what it means.
    return pb.Record(key=record.key, value=record.value, timestamp_ms=record.timestamp_ms, partition=record.partition,
                     headers=[pb.Header(key=k, value=v) for k, v in record.headers] if record.headers else None)


def produce_to_proto(
    topic: str,
    records: Sequence[RecordIn],
    *,
    partition: int | None = None,
    acks: Acks = Acks.ALL,
    producer: ProducerIdentity | None = None,
) -> Any:
    request = pb.ProduceRequest(topic=topic, records=[record_to_proto(r) for r in records],
                                acks=ACKS_TO_PROTO[acks])
    if partition is not None:
        request.partition = partition
    if producer is not None:
        request.producer.CopyFrom(pb.Producer(producer_id=producer.producer_id,
                                              producer_epoch=producer.producer_epoch,
                                              base_sequence=producer.base_sequence))
    return request


def produce_response_to_proto(topic: str, offsets: Sequence[tuple[int, int]], duplicate: bool) -> Any:
    return pb.ProduceResponse(topic=topic, partitions=[p for p, _ in offsets], offsets=[o for _, o in offsets],
                              duplicate=duplicate)


def produce_response_from_proto(message: Any) -> ProduceResponse:
    # validated from plain dicts: pydantic builds the thousand RecordOffsets of a big request faster than Python
    return ProduceResponse.model_validate({
        "topic": message.topic, "duplicate": message.duplicate,
        "offsets": [{"partition": p, "offset": o} for p, o in zip(message.partitions, message.offsets, strict=True)]})


# -- fetch ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchCall:
    """A decoded FetchRequest or FetchStreamRequest."""

    topic: str
    partition: int
    offset: int
    max_records: int
    max_bytes: int
    raw_batches: bool
    wait_s: float = 0.0


def fetch_from_proto(request: Any) -> FetchCall:
    """FetchRequest and FetchStreamRequest share their fields (the stream has no wait_ms: it always waits)."""
    wait_ms = getattr(request, "wait_ms", 0)
    return FetchCall(
        topic=request.topic, partition=partition_index(request.partition),
        offset=in_range(request.offset, limits.OFFSET, "offset"),
        max_records=in_range(request.max_records, limits.MAX_RECORDS, "max_records")
        if request.HasField("max_records") else DEFAULT_MAX_RECORDS,
        max_bytes=in_range(request.max_bytes, limits.MAX_BYTES, "max_bytes") if request.HasField("max_bytes")
        else DEFAULT_MAX_BYTES,
        raw_batches=request.raw_batches, wait_s=in_range(wait_ms, limits.WAIT_MS, "wait_ms") / 1000)


def fetch_response_to_proto(call: FetchCall, result: FetchResult) -> tuple[Any, int]:
    """The response for `result`, and how many records it carries (for the fetched-messages metric)."""
    response = pb.FetchResponse(topic=call.topic, partition=call.partition, high_watermark=result.high_watermark,
                                log_start_offset=result.log_start_offset)
    if call.raw_batches:
        next_offset = call.offset
        count = 0
        for _, header in batches.iter_headers(result.data):
            next_offset = max(next_offset, header.next_offset)
            count += header.record_count
        response.batches = result.data
        response.next_offset = next_offset
        return response, count
    records, next_offset = records_for_client(call.topic, call.partition, result.data, call.offset, call.max_records)
    response.records.extend(fetched_record_to_proto(r) for r in records)
    response.next_offset = next_offset
    return response, len(records)


def fetched_record_to_proto(record: Record) -> Any:
    return pb.FetchedRecord(offset=record.offset, timestamp_ms=record.timestamp_ms, key=record.key, value=record.value,
                            headers=[pb.Header(key=k, value=v) for k, v in record.headers] if record.headers else None)


def fetched_record_from_proto(message: Any) -> Record:
    return Record(
        offset=message.offset, timestamp_ms=message.timestamp_ms,
        key=message.key if message.HasField("key") else None,
        value=message.value if message.HasField("value") else None,
        headers=[(header.key, header.value) for header in message.headers])


def offsets_to_proto(offsets: dict[str, int | None]) -> Any:
    response = pb.GetOffsetsResponse(earliest=offsets["earliest"] or 0, latest=offsets["latest"] or 0,
                                     log_end_offset=offsets["logEnd"] or 0)
    found = offsets.get("forTimestamp")
    if found is not None:
        response.for_timestamp = found
    return response


def offsets_from_proto(message: Any) -> dict[str, int | None]:
    """The same shape as `Broker.partition_offsets` and the HTTP offsets route."""
    return {"earliest": message.earliest, "latest": message.latest, "logEnd": message.log_end_offset,
            "forTimestamp": message.for_timestamp if message.HasField("for_timestamp") else None}


# -- a refusal inside a response (ProduceBatchStream) -----------------------------------------------------------------


def request_error_to_proto(error: GoQueueError) -> Any:
    return pb.RequestError(code=error.code, message=error.message, retriable=error.retriable)


def request_error_from_proto(message: Any) -> GoQueueError:
    """The typed error a `RequestError` stands for, as a status's `goqueue-error-code` maps to it."""
    return error_for_code(message.code)(message.message)
