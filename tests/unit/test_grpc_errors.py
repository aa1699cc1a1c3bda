"""gRPC error mapping: every error class has a valid status, survives the trip to the client, and bad input in a
protobuf request becomes INVALID_REQUEST before it reaches the broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from goqueue.api.grpc import convert
from goqueue.api.grpc.errors import (
    ERROR_CODE_KEY,
    RETRIABLE_KEY,
    MalformedMessage,
    status_code_for,
    tolerant_deserializer,
    trailing_metadata_for,
)
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.grpc_client import error_from_rpc
from goqueue.errors import GoQueueError, InvalidConfig, InvalidRequest, Unavailable, all_error_classes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_maps_to_a_grpc_status(cls: type[GoQueueError]) -> None:
    status = status_code_for(cls)
    assert isinstance(status, grpc.StatusCode)
    assert status.name == cls.grpc_code
    assert status is not grpc.StatusCode.OK


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_the_client_raises_the_class_the_broker_sent(cls: type[GoQueueError]) -> None:
    sent = cls("what went wrong")
    metadata = trailing_metadata_for(sent)
    assert dict(metadata) == {ERROR_CODE_KEY: cls.code, RETRIABLE_KEY: "true" if cls.retriable else "false"}
    on_the_wire = grpc.aio.AioRpcError(status_code_for(sent), grpc.aio.Metadata(), grpc.aio.Metadata(*metadata),
                                       details=sent.message)
    received = error_from_rpc(on_the_wire, "127.0.0.1:9000")
    assert type(received) is cls
    assert received.message == "what went wrong"


def test_a_failure_without_a_goqueue_code_is_still_typed() -> None:
    unreachable = grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details="failed to connect")
    assert isinstance(error_from_rpc(unreachable, "127.0.0.1:1"), Unavailable)


def test_malformed_bytes_become_a_malformed_message_not_an_exception() -> None:
    deserialize = tolerant_deserializer(pb.ProduceRequest)
    good = pb.ProduceRequest(topic="t", records=[pb.Record(value=b"v")])
    assert deserialize(good.SerializeToString()) == good
    bad = deserialize(b"\x0a\x01\xff")  # the topic string is not UTF-8
    assert isinstance(bad, MalformedMessage)
    error = bad.to_error()
    assert type(error) is InvalidRequest
    assert "goqueue.v1.ProduceRequest" in error.message


produce, fetch, create = convert.produce_from_proto, convert.fetch_from_proto, convert.topic_create_from_proto
BAD_REQUESTS: list[tuple[str, Callable[[Any], Any], Any, type[InvalidRequest]]] = [
    ("negative partition", produce, pb.ProduceRequest(topic="t", partition=-1, records=[pb.Record()]),
     InvalidRequest),
    ("negative record partition", produce, pb.ProduceRequest(topic="t", records=[pb.Record(partition=-2)]),
     InvalidRequest),
    ("unknown acks", produce, pb.ProduceRequest(topic="t", records=[pb.Record()], acks=42), InvalidRequest),
    ("negative timestamp", produce, pb.ProduceRequest(topic="t", records=[pb.Record(timestamp_ms=-5)]),
     InvalidRequest),
    ("producer epoch beyond int16", produce, pb.ProduceRequest(
        topic="t", partition=0, records=[pb.Record()], producer=pb.Producer(producer_id=1, producer_epoch=40_000)),
     InvalidRequest),
    ("idempotent without partition", produce, pb.ProduceRequest(
        topic="t", records=[pb.Record()], producer=pb.Producer(producer_id=1)), InvalidRequest),
    ("negative fetch offset", fetch, pb.FetchRequest(topic="t", offset=-1), InvalidRequest),
    ("zero max_records", fetch, pb.FetchRequest(topic="t", max_records=0), InvalidRequest),
    ("negative wait", fetch, pb.FetchRequest(topic="t", wait_ms=-1), InvalidRequest),
    ("zero partitions", create, pb.CreateTopicRequest(name="t", partitions=0), InvalidRequest),
    ("unknown cleanup policy", create, pb.CreateTopicRequest(name="t", config=pb.TopicConfig(cleanup_policy=9)),
     InvalidConfig),
    ("segment too small", create, pb.CreateTopicRequest(name="t", config=pb.TopicConfig(segment_bytes=10)),
     InvalidConfig),
]


@pytest.mark.parametrize(("case", "from_proto", "request_message", "error"), BAD_REQUESTS,
                         ids=[c[0] for c in BAD_REQUESTS])
def test_bad_fields_are_invalid_requests(case: str, from_proto: Callable[[Any], Any], request_message: Any,
                                         error: type[InvalidRequest]) -> None:
    with pytest.raises(error) as caught:
        from_proto(request_message)
    assert status_code_for(caught.value) is grpc.StatusCode.INVALID_ARGUMENT, case
