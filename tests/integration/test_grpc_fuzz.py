"""Property-based fuzzing of every gRPC method with random and boundary messages (hypothesis), against a real broker.

Messages are generated from the service's own descriptors, so a method or field added to goqueue.proto is fuzzed
without touching this test: integers at and past their bounds (0, ±1, the int32/int64 limits, the API's ranges'
edges), unknown enum numbers, random text and bytes, the fixture's own topic and group names, repeated fields of
0-3 items, nested messages present or absent — and, for half the examples, a valid request of the method with some
fields replaced (`VALID`, `near`), so the checks behind the lookups are reached too. Streaming methods get one to
three such messages. No answer may be INTERNAL or UNKNOWN (a bug in the broker, which logs a traceback); every
other status is a typed refusal. Derandomized (fixed seed) and bounded; the broker's `limits.maxWait` is 50 ms so
long-polls return at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from goqueue import limits
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.storage import batch as batches
from tests.integration.broker_process import BrokerProcess

pytestmark = pytest.mark.integration

EXAMPLES_PER_METHOD = 60
CALL_TIMEOUT_S = 5.0
SERVICE = pb.DESCRIPTOR.services_by_name["GoQueue"]

_EDGES = sorted({0, 1, -1, 2**15 - 1, 2**15, limits.INT32_MAX, -limits.INT32_MAX - 1, limits.INT64_MAX,
                 -limits.INT64_MAX - 1, limits.MAX_PARTITIONS_PER_TOPIC, limits.MAX_RECORDS_PER_REQUEST,
                 int(limits.TIMESTAMP_MS.maximum), int(limits.TIMESTAMP_MS.maximum) + 1})
_NAMES = st.sampled_from(["fuzz", "", "__consumer_state", "a" * 300, "fuzz/0/0/1/0", "\u00e9", "."])
_EXISTING_NAMED = {"topic", "group", "name"}
_INT_BOUNDS = {FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
               FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1)}


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type in _INT_BOUNDS:
        low, high = _INT_BOUNDS[field.type]
        return st.one_of(st.sampled_from([e for e in _EDGES if low <= e <= high]), st.integers(low, high))
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(st.sampled_from([0.0, -1.0, 1e308, float("inf"), float("nan"), 43200.0, 43200.5]),
                         st.floats(width=32 if field.type == FieldDescriptor.TYPE_FLOAT else 64))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_STRING:
        if field.name in _EXISTING_NAMED:  # mostly the fixture's topic or group, so requests get past the lookup
            return st.one_of(st.just("fuzz"), st.just("fuzz"), _NAMES, st.text(max_size=40))
        return st.one_of(_NAMES, st.text(max_size=40))
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if field.type == FieldDescriptor.TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-5, 99))  # unknown numbers are legal proto3
    raise AssertionError(f"no strategy for {field.full_name}")


def messages(descriptor: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Any message of this type, every field present or absent."""
    cls = _message_class(descriptor)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            one = messages(field.message_type, depth + 1)
        else:
            one = _scalar(field)
        repeated = field.is_repeated
        parts[field.name] = st.lists(one, max_size=3) if repeated else st.one_of(st.none(), one)
    return st.fixed_dictionaries({}, optional=parts).map(lambda values: _build(cls, values))


# One valid request per method that needs more than a name to get past the lookups. Random messages almost never
# reach the deep checks (a produce needs the fixture's topic, a partition, records and a producer at once: about
# one example in 700), so half the examples start from these and replace each field with probability 1/4.
VALID: dict[str, str] = {
    "CreateTopic": 'name: "fuzz-new" partitions: 1 replication_factor: 1 config { retention_max_age_s: 3600 }',
    "DescribeTopic": 'name: "fuzz" details: true',
    "UpdateTopic": 'name: "fuzz" partitions: 2 config { max_message_bytes: 1048576 min_insync_replicas: 1 }',
    "Produce": 'topic: "fuzz" partition: 0 records { key: "k" value: "v" timestamp_ms: 1700000000000 '
               'headers { key: "h" value: "v" } } producer { producer_id: 7 producer_epoch: 0 base_sequence: 0 }',
    "ProduceBatch": 'topic: "fuzz" partition: 1',  # + a real batch: `_valid`
    "Fetch": 'topic: "fuzz" partition: 0 offset: 0 max_records: 10 max_bytes: 65536 wait_ms: 10',
    "FetchStream": 'topic: "fuzz" partition: 0 offset: 0 max_records: 10 max_bytes: 65536',
    "GetOffsets": 'topic: "fuzz" partition: 0 timestamp_ms: 0',
    "JoinGroup": 'group: "fuzz-ordered" client_id: "c" topics: "fuzz"',
    "Heartbeat": 'group: "fuzz-ordered" member_id: "m" generation: 1',
    "Consume": 'group: "fuzz" consumer_id: "c" topic: "fuzz" max_records: 10 max_bytes: 65536 wait_ms: 10',
    "ConsumeStream": 'subscription { group: "fuzz" consumer_id: "c" topic: "fuzz" } credit: 5',
    "Ack": 'group: "fuzz" lease_ids: "lease"',
    "Nack": 'group: "fuzz" lease_ids: "lease" delay_s: 1 reason: "r"',
    "CommitOffsets": 'group: "fuzz-ordered" member_id: "m" generation: 1 '
                     'offsets { topic: "fuzz" partition: 0 offset: 1 }',
}
VALID["ProduceStream"] = VALID["Produce"]
VALID["Release"] = VALID["Ack"]


def _valid(method: Any) -> Any | None:
    text = VALID.get(method.name)
    if text is None:
        return None
    message = text_format.Parse(text, _message_class(method.input_type)())
    if method.name == "ProduceBatch":
        message.batch = bytes(batches.build_batch([(b"k", b"v", [])], 1_700_000_000_000))
    return message


def near(template: Any) -> st.SearchStrategy[Any]:
    """`template` with each field kept (3 in 4) or replaced by any value of its type, present or absent."""
    descriptor = template.DESCRIPTOR
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        value = getattr(template, field.name)
        if field.is_repeated:
            kept: st.SearchStrategy[Any] = st.tuples(*[
                near(item) if field.type == FieldDescriptor.TYPE_MESSAGE else st.just(item) for item in value
            ]).map(list)
            other = st.lists(messages(field.message_type, 1) if field.type == FieldDescriptor.TYPE_MESSAGE
                             else _scalar(field), max_size=3)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            kept = near(value) if template.HasField(field.name) else st.none()
            other = st.one_of(st.none(), messages(field.message_type, 1))
        else:
            kept = st.none() if field.has_presence and not template.HasField(field.name) else st.just(value)
            other = st.one_of(st.none(), _scalar(field))
        parts[field.name] = st.one_of(kept, kept, kept, other)
    return st.fixed_dictionaries(parts).map(lambda values: _build(_message_class(descriptor), values))


_FLOAT_EDGES = [0.0, -1.0, 1e308, float("inf"), float("-inf"), float("nan"), 43200.5]
_TEXT_EDGES = ["", "\u00e9", "a" * 300, "__consumer_state", "../x", "fuzz/0/0/1/0"]


def one_field_at_its_edges(template: Any) -> Iterator[tuple[str, Any]]:
    """(path, message): `template` with exactly one scalar field, at any depth, set to each of its type's edge
    values (or cleared) — every bound check behind the lookups is met, deterministically, not by chance."""
    for path, parent, field in _scalar_fields(template, ""):
        if field.type in _INT_BOUNDS:
            low, high = _INT_BOUNDS[field.type]
            values: list[Any] = [e for e in _EDGES if low <= e <= high]
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            values = _FLOAT_EDGES
        elif field.type == FieldDescriptor.TYPE_STRING:
            values = _TEXT_EDGES
        elif field.type == FieldDescriptor.TYPE_BYTES:
            values = [b"", b"\xff" * 70]
        elif field.type == FieldDescriptor.TYPE_ENUM:
            values = [-1, 99]
        else:
            values = [not getattr(parent, field.name)]
        for value in [*values, None]:
            message = type(template)()
            message.CopyFrom(template)
            target = _resolve(message, path)
            if value is None:
                target.ClearField(field.name)
            elif field.is_repeated:
                getattr(target, field.name)[:] = [value]
            else:
                setattr(target, field.name, value)
            yield f"{path}{field.name}={value!r}"[:120], message


def _scalar_fields(message: Any, path: str) -> Iterator[tuple[str, Any, FieldDescriptor]]:
    for field in message.DESCRIPTOR.fields:
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            yield path, message, field
        elif field.is_repeated:
            for index, item in enumerate(getattr(message, field.name)):
                yield from _scalar_fields(item, f"{path}{field.name}[{index}].")
        elif message.HasField(field.name):
            yield from _scalar_fields(getattr(message, field.name), f"{path}{field.name}.")


def _resolve(message: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        name, _, index = part.partition("[")
        message = getattr(message, name)[int(index[:-1])] if index else getattr(message, name)
    return message


def _build(cls: Any, values: dict[str, Any]) -> Any:
    message = cls()
    for name, value in values.items():
        if value is None:
            continue
        field = getattr(message, name)
        if isinstance(value, list):
            for item in value:
                if hasattr(item, "DESCRIPTOR"):
                    field.add().CopyFrom(item)
                else:
                    field.append(item)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(message, name).CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


def _message_class(descriptor: Any) -> Any:
    cls = pb
    for part in descriptor.full_name.removeprefix(f"{pb.DESCRIPTOR.package}.").split("."):
        cls = getattr(cls, part)
    return cls


def _call(channel: grpc.Channel, method: Any, requests: list[Any]) -> tuple[grpc.StatusCode, str]:
    """The call's status code and details (the details say which failure it was when a code is wrong)."""
    path = f"/{SERVICE.full_name}/{method.name}"
    request_type = _message_class(method.input_type)
    response_type = _message_class(method.output_type)
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}[
        (method.client_streaming, method.server_streaming)]
    call = kind(path, request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString)
    argument: Any = iter(requests) if method.client_streaming else requests[0]
    try:
        if method.server_streaming:
            for _ in call(argument, timeout=CALL_TIMEOUT_S):
                pass
        else:
            call(argument, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:  # grpc's RpcError is also a Call
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("method_name", [method.name for method in SERVICE.methods])
def test_no_method_answers_internal(fuzz_broker: BrokerProcess, method_name: str) -> None:
    method = SERVICE.methods_by_name[method_name]
    valid = _valid(method)
    one = messages(method.input_type) if valid is None else st.one_of(messages(method.input_type), near(valid))
    requests = st.lists(one, min_size=1, max_size=3 if method.client_streaming else 1)
    seen: set[grpc.StatusCode] = set()
    with grpc.insecure_channel(fuzz_broker.grpc_target) as channel:

        @given(batch=requests)
        @settings(max_examples=EXAMPLES_PER_METHOD, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def call(batch: list[Any]) -> None:
            code, details = _call(channel, method, batch)
            seen.add(code)
            assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (method_name, details, batch)

        call()
    assert seen, "the method was called"


@pytest.mark.parametrize("method_name", sorted(VALID))
def test_no_edge_value_in_one_field_of_a_valid_request_answers_internal(fuzz_broker: BrokerProcess,
                                                                       method_name: str) -> None:
    method = SERVICE.methods_by_name[method_name]
    valid = _valid(method)
    assert valid is not None
    failures = []
    cases = 0
    with grpc.insecure_channel(fuzz_broker.grpc_target) as channel:
        for case, message in one_field_at_its_edges(valid):
            cases += 1
            code, details = _call(channel, method, [message])
            if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                failures.append(f"{case}: {code.name} {details}")
    assert cases > 0
    assert not failures, failures
