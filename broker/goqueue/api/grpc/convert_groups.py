"""Protobuf messages ⇄ consumer-group models (`goqueue.models`), both ways: the group half of `convert.py`.

Requests are validated by building the same pydantic models the HTTP API uses, so bad input gets the same
INVALID_REQUEST message over both APIs. Records travel as bytes in protobuf: the servicer asks the coordinator for
base64 (lossless) and decodes here; the client turns bytes back into a `DeliveredRecord` with the encoding HTTP
would have chosen (utf8 when it decodes, else base64). Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from goqueue import limits
from goqueue.api.grpc.convert import in_range, invalid_model
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.config import OffsetReset
from goqueue.errors import InvalidRequest
from goqueue.models import (
    AckRequest,
    AckResponse,
    CommitRequest,
    CommitResponse,
    ConsumeRequest,
    ConsumeResponse,
    DeliveredRecord,
    Encoding,
    GroupState,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    NackRequest,
    OffsetCommit,
    ReadPosition,
    TopicPartition,
    choose_encoding,
    decode_text,
    encode_bytes,
)

STATE_TO_PROTO = {GroupState.EMPTY: pb.GROUP_STATE_EMPTY, GroupState.STABLE: pb.GROUP_STATE_STABLE,
                  GroupState.REBALANCING: pb.GROUP_STATE_REBALANCING, GroupState.PAUSED: pb.GROUP_STATE_PAUSED,
                  GroupState.DEAD: pb.GROUP_STATE_DEAD}
STATE_FROM_PROTO = {number: state for state, number in STATE_TO_PROTO.items()}
START_FROM_PROTO = {pb.START_FROM_UNSPECIFIED: None, pb.START_FROM_EARLIEST: OffsetReset.EARLIEST,
                    pb.START_FROM_LATEST: OffsetReset.LATEST}
START_TO_PROTO = {reset: number for number, reset in START_FROM_PROTO.items()}


def _validated(model: type[BaseModel], fields: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise invalid_model(what, exc) from exc


def _present(message: Any, *names: str) -> dict[str, Any]:
    """The proto3 `optional` fields of `message` that are set, by name."""
    return {name: getattr(message, name) for name in names if message.HasField(name)}


def group_name(message: Any) -> str:
    if not message.group:
        raise InvalidRequest("group: a group name is required")
    return str(message.group)


def _state_to_proto(state: GroupState) -> Any:
    return STATE_TO_PROTO[state]


def _state_from_proto(value: int) -> GroupState:
    return STATE_FROM_PROTO.get(value, GroupState.EMPTY)


def _partitions_to_proto(partitions: Iterable[TopicPartition]) -> list[Any]:
    return [pb.TopicPartition(topic=tp.topic, partition=tp.partition) for tp in partitions]


def _partitions_from_proto(messages: Iterable[Any]) -> list[TopicPartition]:
    return [TopicPartition(topic=m.topic, partition=m.partition) for m in messages]


# -- membership ---------------------------------------------------------------------------------------------------


def join_from_proto(message: Any) -> tuple[str, JoinRequest]:
    fields = {"topics": list(message.topics), **_present(message, "member_id", "host")}
    if message.client_id:
        fields["client_id"] = message.client_id
    return group_name(message), _validated(JoinRequest, fields, "JoinGroupRequest")


def join_to_proto(group: str, request: JoinRequest) -> Any:
    return pb.JoinGroupRequest(group=group, member_id=request.member_id, client_id=request.client_id,
                               host=request.host, topics=request.topics)


def join_response_to_proto(response: JoinResponse) -> Any:
    return pb.JoinGroupResponse(
        member_id=response.member_id, generation=response.generation, state=_state_to_proto(response.state),
        assignments=_partitions_to_proto(response.assignments), session_timeout_ms=response.session_timeout_ms,
        paused=response.paused)


def join_response_from_proto(message: Any) -> JoinResponse:
    return JoinResponse(member_id=message.member_id, generation=message.generation,
                        state=_state_from_proto(message.state), assignments=_partitions_from_proto(message.assignments),
                        session_timeout_ms=message.session_timeout_ms, paused=message.paused)


def heartbeat_response_to_proto(response: HeartbeatResponse) -> Any:
    return pb.HeartbeatResponse(generation=response.generation, state=_state_to_proto(response.state),
                                rejoin=response.rejoin, paused=response.paused,
                                assignments=_partitions_to_proto(response.assignments))


def heartbeat_response_from_proto(message: Any) -> HeartbeatResponse:
    return HeartbeatResponse(generation=message.generation, state=_state_from_proto(message.state),
                             rejoin=message.rejoin, paused=message.paused,
                             assignments=_partitions_from_proto(message.assignments))


# -- consume --------------------------------------------------------------------------------------------------------


def consume_from_proto(message: Any) -> tuple[str, ConsumeRequest]:
    """A ConsumeRequest for the coordinator; records are asked for in base64 so they convert to bytes losslessly."""
    if message.start_from not in START_FROM_PROTO:
        raise InvalidRequest(f"start_from: unknown value {message.start_from}")
    fields: dict[str, Any] = {
        **_present(message, "consumer_id", "member_id", "generation", "topic", "max_records", "max_bytes"),
        "wait_ms": message.wait_ms, "start_from": START_FROM_PROTO[message.start_from], "encoding": Encoding.BASE64}
    if message.has_positions:
        fields["positions"] = [{"topic": p.topic, "partition": p.partition, "offset": p.offset}
                               for p in message.positions]
    return group_name(message), _validated(ConsumeRequest, fields, "ConsumeRequest")


def _positions_to_proto(positions: list[ReadPosition]) -> list[Any]:
    return [pb.ReadPosition(topic=p.topic, partition=p.partition, offset=p.offset) for p in positions]


def consume_to_proto(group: str, request: ConsumeRequest) -> Any:
    return pb.ConsumeRequest(
        group=group, consumer_id=request.consumer_id, member_id=request.member_id, generation=request.generation,
        topic=request.topic, max_records=request.max_records, max_bytes=request.max_bytes, wait_ms=request.wait_ms,
        start_from=START_TO_PROTO[request.start_from], has_positions=request.positions is not None,
        positions=_positions_to_proto(request.positions or []))


def delivered_to_proto(record: DeliveredRecord) -> Any:
    enc = record.encoding
    return pb.DeliveredRecord(
        topic=record.topic, partition=record.partition, offset=record.offset, timestamp_ms=record.timestamp_ms,
        key=decode_text(record.key, enc, "key"), value=decode_text(record.value, enc, "value"),
        headers=[pb.Header(key=k, value=decode_text(v, enc, "header") or b"") for k, v in record.headers.items()],
        lease_id=record.lease_id, delivery_count=record.delivery_count,
        lease_expires_at_ms=record.lease_expires_at_ms)


def delivered_from_proto(message: Any) -> DeliveredRecord:
    key = message.key if message.HasField("key") else None
    value = message.value if message.HasField("value") else None
    headers = [(h.key, h.value) for h in message.headers]
    enc = choose_encoding(key, value, *(v for _, v in headers))
    return DeliveredRecord(
        topic=message.topic, partition=message.partition, offset=message.offset, timestamp_ms=message.timestamp_ms,
        key=encode_bytes(key, enc), value=encode_bytes(value, enc),
        headers={k: encode_bytes(v, enc) or "" for k, v in headers}, encoding=enc,
        lease_id=message.lease_id if message.HasField("lease_id") else None, delivery_count=message.delivery_count,
        lease_expires_at_ms=message.lease_expires_at_ms if message.HasField("lease_expires_at_ms") else None)


def consume_response_to_proto(response: ConsumeResponse) -> Any:
    return pb.ConsumeResponse(group=response.group, records=[delivered_to_proto(r) for r in response.records],
                              paused=response.paused, state=_state_to_proto(response.state),
                              generation=response.generation, positions=_positions_to_proto(response.positions))


def consume_response_from_proto(message: Any) -> ConsumeResponse:
    return ConsumeResponse(group=message.group, records=[delivered_from_proto(r) for r in message.records],
                           paused=message.paused, state=_state_from_proto(message.state),
                           generation=message.generation if message.HasField("generation") else None,
                           positions=[ReadPosition(topic=p.topic, partition=p.partition, offset=p.offset)
                                      for p in message.positions])


@dataclass(frozen=True)
class Subscription:
    """The first ConsumeStreamRequest: what to consume, as whom, and the first credit."""

    group: str
    request: ConsumeRequest
    credit: int


def subscription_from_proto(message: Any, max_credit: int) -> Subscription:
    if not message.HasField("subscription"):
        raise InvalidRequest("the first ConsumeStreamRequest carries the subscription")
    group, request = consume_from_proto(message.subscription)
    return Subscription(group, request, stream_credit(message, max_credit, 0))


def stream_credit(message: Any, max_credit: int, outstanding: int) -> int:
    """The credit a ConsumeStreamRequest grants, checked against the bound on credit outstanding."""
    in_range(message.credit, limits.STREAM_CREDIT, "credit")
    if outstanding + message.credit > max_credit:
        raise InvalidRequest(f"at most {max_credit} records of credit may be outstanding on a stream")
    return int(message.credit)


# -- settle ---------------------------------------------------------------------------------------------------------


def ack_from_proto(message: Any) -> tuple[str, AckRequest]:
    return group_name(message), _validated(AckRequest, {"lease_ids": list(message.lease_ids)}, "AckRequest")


def nack_from_proto(message: Any) -> tuple[str, NackRequest]:
    fields = {"lease_ids": list(message.lease_ids), "delay_s": message.delay_s, **_present(message, "reason")}
    return group_name(message), _validated(NackRequest, fields, "NackRequest")


def ack_response_to_proto(response: AckResponse) -> Any:
    return pb.AckResponse(acked=response.acked, already_done=response.already_done, stale=response.stale,
                          dead_lettered=response.dead_lettered)


def ack_response_from_proto(message: Any) -> AckResponse:
    return AckResponse(acked=message.acked, already_done=message.already_done, stale=list(message.stale),
                       dead_lettered=message.dead_lettered)


def commit_from_proto(message: Any) -> tuple[str, CommitRequest]:
    fields = {"offsets": [{"topic": o.topic, "partition": o.partition, "offset": o.offset} for o in message.offsets],
              **_present(message, "member_id", "generation")}
    return group_name(message), _validated(CommitRequest, fields, "CommitOffsetsRequest")


def commit_to_proto(group: str, request: CommitRequest) -> Any:
    return pb.CommitOffsetsRequest(group=group, member_id=request.member_id, generation=request.generation,
                                   offsets=_offsets_to_proto(request.offsets))


def _offsets_to_proto(offsets: Iterable[OffsetCommit]) -> list[Any]:
    return [pb.OffsetCommit(topic=o.topic, partition=o.partition, offset=o.offset) for o in offsets]


def commit_response_to_proto(response: CommitResponse) -> Any:
    return pb.CommitOffsetsResponse(committed=_offsets_to_proto(response.committed))


def commit_response_from_proto(message: Any) -> CommitResponse:
    return CommitResponse(committed=[OffsetCommit(topic=o.topic, partition=o.partition, offset=o.offset)
                                     for o in message.committed])
