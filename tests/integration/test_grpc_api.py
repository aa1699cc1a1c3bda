"""The gRPC API against a real `goqueue-broker` process on loopback.

Each test asserts both sides of an error: the typed exception the client raises and the raw gRPC status plus the
`goqueue-error-code` trailing metadata a client in another language would see.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import anyio
import grpc
import httpx
import pytest
from broker_process import BrokerFactory, BrokerProcess
from prometheus_client.parser import text_string_to_metric_families

from goqueue.api.grpc.errors import ERROR_CODE_KEY
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.servicer import REFUSAL_DRAIN_MAX_S
from goqueue.client.grpc_batch_transport import GrpcBatchTransport
from goqueue.client.grpc_client import GrpcClient
from goqueue.errors import (
    InternalError,
    InvalidRequest,
    InvalidTopicName,
    NotFound,
    NotReady,
    OffsetOutOfRange,
    OutOfOrderSequence,
    PartitionNotFound,
    PartitionsCannotShrink,
    RecordTooLarge,
    TopicAlreadyExists,
    TopicNotFound,
    Unavailable,
)
from goqueue.models import Acks, CleanupPolicy, ProduceResponse, TopicConfig, TopicCreate, TopicUpdate
from goqueue.records import ProducerIdentity, RecordIn
from goqueue.storage import batch as batches
from goqueue_harness.waiting import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

STREAM_TIMEOUT_S = 15.0


@pytest.fixture
async def client(module_broker: BrokerProcess) -> AsyncIterator[GrpcClient]:
    async with GrpcClient(module_broker.grpc_target, timeout_s=20.0) as grpc_client:
        yield grpc_client


async def values_of(client: GrpcClient, topic: str, count: int) -> list[bytes | None]:
    """The first `count` values of partition 0, in log order."""
    values: list[bytes | None] = []
    while len(values) < count:
        fetched = await client.fetch(topic, 0, len(values), max_records=100_000, max_bytes=8_000_000)
        values.extend(r.value for r in fetched.records)
    return values


async def rpc_status(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str | None]:
    """The status of a raw stub call that must fail, and its goqueue-error-code metadata."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    metadata = dict(caught.value.trailing_metadata() or ())
    return caught.value.code(), metadata.get(ERROR_CODE_KEY)


def record(value: bytes | None, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None,
           timestamp_ms: int | None = None) -> RecordIn:
    return RecordIn(key=key, value=value, headers=headers or [], timestamp_ms=timestamp_ms)


async def drain(stream: AsyncIterator[Any]) -> None:
    async for _ in stream:
        pass


async def new_topic(client: GrpcClient, name: str, partitions: int = 1, **config: Any) -> str:
    await client.create_topic(TopicCreate(name=name, partitions=partitions, config=TopicConfig(**config)))
    return name


# -- topics --------------------------------------------------------------------------------------------------------


async def test_topic_lifecycle_and_its_error_codes(client: GrpcClient) -> None:
    created = await client.create_topic(TopicCreate(
        name="crud", partitions=2, config=TopicConfig(retention_max_age_s=3600.0, max_message_bytes=4096)))
    assert (created.name, created.partitions, len(created.partition_details)) == ("crud", 2, 2)
    assert created.config.retention_max_age_s == 3600.0
    assert created.config.segment_bytes is None  # absent in proto: still "the broker default"
    assert "crud" in [t.name for t in await client.list_topics()]

    with pytest.raises(TopicAlreadyExists):
        await client.create_topic(TopicCreate(name="crud"))
    assert await rpc_status(client.stub.CreateTopic(pb.CreateTopicRequest(name="crud"))) == (
        grpc.StatusCode.ALREADY_EXISTS, "TOPIC_ALREADY_EXISTS")

    grown = await client.update_topic("crud", TopicUpdate(partitions=3, config={"retentionMaxAge": "2h"}))
    assert grown.partitions == 3
    assert [p.partition for p in grown.partition_details] == [0, 1, 2]
    assert grown.config.retention_max_age_s == 7200.0
    assert grown.config.max_message_bytes == 4096  # not named in the update: unchanged
    with pytest.raises(PartitionsCannotShrink):
        await client.update_topic("crud", TopicUpdate(partitions=1))

    await client.delete_topic("crud")
    with pytest.raises(TopicNotFound):
        await client.describe_topic("crud")
    assert await rpc_status(client.stub.DescribeTopic(pb.DescribeTopicRequest(name="crud"))) == (
        grpc.StatusCode.NOT_FOUND, "TOPIC_NOT_FOUND")
    assert await rpc_status(client.stub.DeleteTopic(pb.DeleteTopicRequest(name="crud"))) == (
        grpc.StatusCode.NOT_FOUND, "TOPIC_NOT_FOUND")


async def test_invalid_topic_specs_are_invalid_argument(client: GrpcClient) -> None:
    with pytest.raises(InvalidTopicName):
        await client.create_topic(TopicCreate(name="no spaces allowed"))
    assert await rpc_status(client.stub.CreateTopic(pb.CreateTopicRequest(name="zero", partitions=0))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert await rpc_status(client.stub.CreateTopic(pb.CreateTopicRequest(
        name="bad-policy", config=pb.TopicConfig(cleanup_policy=7)))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG")


# -- produce and fetch ---------------------------------------------------------------------------------------------


async def test_produce_fetch_roundtrip_keeps_bytes_nulls_headers(client: GrpcClient) -> None:
    topic = await new_topic(client, "roundtrip")
    sent = [
        record(b"\x00\xff\xfe binary \x80", key=None, headers=[("trace", b"\x01\x02"), ("trace", b"again")]),
        record(b"", key=b"empty-value-is-not-null", timestamp_ms=1_700_000_000_000),
        record(None, key=b"tombstone"),
        record(bytes(range(256)) * 16, key=b"\xff\xfe"),
    ]
    produced = await client.produce(topic, sent)
    assert [(o.partition, o.offset) for o in produced.offsets] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert not produced.duplicate

    fetched = await client.fetch(topic, 0, 0)
    assert (fetched.next_offset, fetched.high_watermark, fetched.log_start_offset) == (4, 4, 0)
    got = [(r.offset, r.key, r.value, r.headers) for r in fetched.records]
    assert got == [(i, s.key, s.value, s.headers) for i, s in enumerate(sent)]
    assert fetched.records[1].timestamp_ms == 1_700_000_000_000

    from_middle = await client.fetch(topic, 0, 2, max_records=1)
    assert [r.offset for r in from_middle.records] == [2]
    assert from_middle.next_offset == 3

    raw = await client.fetch(topic, 0, 0, raw_batches=True)
    assert raw.records == []
    decoded = [r for pos, _ in batches.iter_headers(raw.batches) for r in batches.decode_records(raw.batches, pos)]
    assert [(r.key, r.value, r.headers) for r in decoded] == [(s.key, s.value, s.headers) for s in sent]
    assert raw.next_offset == 4


async def test_tombstones_on_a_compacted_topic(client: GrpcClient) -> None:
    topic = await new_topic(client, "compacted", cleanup_policy=CleanupPolicy.COMPACT)
    await client.produce(topic, [record(b"v1", key=b"k"), record(None, key=b"k")])
    fetched = await client.fetch(topic, 0, 0)
    assert [(r.key, r.value) for r in fetched.records] == [(b"k", b"v1"), (b"k", None)]
    with pytest.raises(InvalidRequest, match="no key"):
        await client.produce(topic, [record(b"keyless")])


async def test_keys_choose_partitions_and_offsets_come_back_per_record(client: GrpcClient,
                                                                      module_broker: BrokerProcess) -> None:
    """The idempotent client picks partitions itself: a key goes where the broker would put it (its CRC32C), and a
    call's keyless records go together to one partition, the next call's to the next (Kafka's sticky partitioner)."""
    topic = await new_topic(client, "spread", partitions=4)
    produced = await client.produce(topic, [record(b"x", key=b"same")] * 3 + [record(b"y", key=None)] * 4)
    keyed = {o.partition for o in produced.offsets[:3]}
    assert len(keyed) == 1  # one key, one partition
    async with GrpcClient(module_broker.grpc_target, idempotent=False) as plain:  # the broker chooses
        assert {o.partition for o in (await plain.produce(topic, [record(b"z", key=b"same")])).offsets} == keyed
    keyless = [{o.partition for o in produced.offsets[3:]}]
    for _ in range(3):
        keyless.append({o.partition for o in (await client.produce(topic, [record(b"y")] * 2)).offsets})
    assert all(len(partitions) == 1 for partitions in keyless)
    assert set().union(*keyless) == {0, 1, 2, 3}  # four calls, four partitions
    offsets = await client.offsets(topic, keyed.pop())
    assert offsets["latest"] in (4, 6, 8)  # the keyed four, plus one call's keyless records if they landed there
    assert offsets["earliest"] == 0


async def test_acks_none_returns_at_once_and_the_record_still_lands(client: GrpcClient) -> None:
    topic = await new_topic(client, "fire-and-forget")
    produced = await client.produce(topic, [record(b"no ack")], acks=Acks.NONE)
    assert [(o.partition, o.offset) for o in produced.offsets] == [(0, -1)]
    fetched = await client.fetch(topic, 0, 0, wait_ms=5000)  # long-polls until the write lands
    assert [r.value for r in fetched.records] == [b"no ack"]


async def test_produce_batch_appends_a_client_built_batch(client: GrpcClient) -> None:
    topic = await new_topic(client, "binary")
    built = batches.build_batch([(b"k", b"v", []), (None, b"w", [("h", b"1")])], 1_700_000_000_000)
    landed = await client.produce_batch(topic, 0, bytes(built))
    assert (landed.base_offset, landed.last_offset, landed.duplicate) == (0, 1, False)
    fetched = await client.fetch(topic, 0, 0)
    assert [(r.key, r.value, r.headers) for r in fetched.records] == [(b"k", b"v", []), (None, b"w", [("h", b"1")])]
    assert await rpc_status(client.stub.ProduceBatch(pb.ProduceBatchRequest(
        topic=topic, partition=0, batch=b"not a batch at all, just bytes long enough" * 2))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")


async def test_produce_stream_answers_in_order_and_keeps_log_order(client: GrpcClient) -> None:
    topic = await new_topic(client, "stream-in")
    requests = 200
    per_request = 5

    async def generate() -> AsyncIterator[list[RecordIn]]:
        for n in range(requests):
            yield [record(f"{n}-{i}".encode()) for i in range(per_request)]

    responses = []
    with anyio.fail_after(STREAM_TIMEOUT_S):
        async with contextlib.aclosing(client.produce_stream(topic, generate(), partition=0)) as stream:
            async for response in stream:
                responses.append(response)
    assert len(responses) == requests
    offsets = [o.offset for response in responses for o in response.offsets]
    assert offsets == list(range(requests * per_request))  # responses in request order, contiguous

    assert await values_of(client, topic, requests * per_request) == [
        f"{n}-{i}".encode() for n in range(requests) for i in range(per_request)]


async def test_produce_stream_ends_with_the_error_of_a_bad_request(client: GrpcClient) -> None:
    topic = await new_topic(client, "stream-error")

    more_wanted = anyio.Event()  # never set: nothing is written after the bad request

    async def generate() -> AsyncIterator[list[RecordIn]]:
        yield [record(b"fine")]
        yield [record(b"x" * (2 * 2**20))]  # over the default limits.maxMessageBytes (1 MiB)
        # Neither writing nor half-closing: the broker ends the stream once the client has been quiet for
        # REFUSAL_QUIET_S (a client still writing is the next test).
        await more_wanted.wait()
        yield [record(b"never written")]

    answered: list[ProduceResponse] = []

    async def produce_all() -> None:
        async with contextlib.aclosing(client.produce_stream(topic, generate(), partition=0)) as stream:
            async for response in stream:
                answered.append(response)

    started = time.monotonic()
    with anyio.fail_after(STREAM_TIMEOUT_S), pytest.raises(RecordTooLarge):
        await produce_all()
    assert time.monotonic() - started < REFUSAL_DRAIN_MAX_S / 2  # ended by the quiet rule, not the cap
    assert [o.offset for r in answered for o in r.offsets] == [0]


async def test_a_produce_stream_client_still_writing_gets_the_refusal_not_internal(client: GrpcClient) -> None:
    """A refused request ends ProduceStream, but the broker ends it only once the client stops writing: a client
    whose write met the end got INTERNAL from grpc.aio in place of the refusal (8 of 20 tries before the fix)."""
    topic = await new_topic(client, "stream-error-writing")

    async def generate() -> AsyncIterator[list[RecordIn]]:
        yield [record(b"fine")]
        yield [record(b"x" * (2 * 2**20))]  # over the default limits.maxMessageBytes (1 MiB)
        for _ in range(300):
            yield [record(b"after the refusal")]

    async def produce_all() -> None:
        async with contextlib.aclosing(client.produce_stream(topic, generate(), partition=0)) as stream:
            async for _ in stream:
                pass

    for _ in range(10):
        with anyio.fail_after(STREAM_TIMEOUT_S), pytest.raises(RecordTooLarge):
            await produce_all()


async def test_a_produce_stream_client_that_never_stops_writing_still_gets_an_end(client: GrpcClient) -> None:
    """The broker drops what a client writes after a refusal for REFUSAL_DRAIN_MAX_S at most, then ends the stream."""
    topic = await new_topic(client, "stream-error-endless")

    async def generate() -> AsyncIterator[list[RecordIn]]:
        yield [record(b"x" * (2 * 2**20))]
        while True:
            yield [record(b"after the refusal")]
            await anyio.sleep(0.001)

    async def produce_all() -> None:
        async with contextlib.aclosing(client.produce_stream(topic, generate(), partition=0)) as stream:
            async for _ in stream:
                pass

    started = time.monotonic()
    # The cap may end the stream mid-write, so grpc's INTERNAL for that write is as good an end as the refusal.
    with anyio.fail_after(REFUSAL_DRAIN_MAX_S + STREAM_TIMEOUT_S), pytest.raises((RecordTooLarge, InternalError)):
        await produce_all()
    # Not at the refusal (the writes after it were drained), and not much after the cap.
    assert REFUSAL_DRAIN_MAX_S * 0.9 <= time.monotonic() - started < REFUSAL_DRAIN_MAX_S + 3


async def test_produce_batch_stream_answers_in_order_and_keeps_log_order(client: GrpcClient) -> None:
    topic = await new_topic(client, "batch-stream-in")
    requests, per_request = 200, 5

    async def generate() -> AsyncIterator[tuple[int, bytes]]:
        for n in range(requests):
            yield 0, bytes(batches.build_batch([(None, f"{n}-{i}".encode(), []) for i in range(per_request)], 0))

    with anyio.fail_after(STREAM_TIMEOUT_S):
        async with contextlib.aclosing(client.produce_batch_stream(topic, generate())) as stream:
            answers = [(answer.base_offset, answer.last_offset) async for answer in stream]
    assert answers == [(n * per_request, n * per_request + per_request - 1) for n in range(requests)]
    assert await values_of(client, topic, requests * per_request) == [
        f"{n}-{i}".encode() for n in range(requests) for i in range(per_request)]


async def test_produce_batch_stream_answers_a_refused_batch_with_its_error_and_goes_on(client: GrpcClient) -> None:
    """A refusal is an answer, not the end of the stream: ending it would race the client's next writes."""
    topic = await new_topic(client, "batch-stream-error")

    def request(batch: bytes) -> Any:
        return pb.ProduceBatchRequest(topic=topic, partition=0, batch=batch)

    call = client.stub.ProduceBatchStream()
    with anyio.fail_after(STREAM_TIMEOUT_S):
        await call.initial_metadata()  # sent before anything is written: the client knows the stream is served
        assert not call.done()
        for batch in (batches.build_batch([(None, b"first", [])], 0), b"not a batch at all, just bytes" * 3,
                      batches.build_batch([(None, b"second", [])], 0)):
            await call.write(request(bytes(batch)))
        await call.done_writing()
        answers = [answer async for answer in call]
    assert [(a.base_offset, a.error.code) for a in answers] == [(0, ""), (-1, "INVALID_REQUEST"), (1, "")]
    assert not answers[0].HasField("error")
    assert answers[1].error.retriable is False
    assert await call.code() == grpc.StatusCode.OK

    async def refused_then_more() -> AsyncIterator[tuple[int, bytes]]:
        yield 0, b"still not a batch, and long enough to be read" * 2
        yield 0, bytes(batches.build_batch([(None, b"third", [])], 0))

    async def produce_all() -> None:
        async with contextlib.aclosing(client.produce_batch_stream(topic, refused_then_more())) as stream:
            async for _ in stream:
                pass

    with anyio.fail_after(STREAM_TIMEOUT_S), pytest.raises(InvalidRequest, match="invalid record batch"):
        await produce_all()


async def test_the_batch_stream_refuses_a_batch_over_the_brokers_request_limit_itself_and_stays_open(
        broker_factory: BrokerFactory) -> None:
    """grpc refuses a message far over limits.maxRequestBytes by ending the whole stream, with no code, every batch
    on it unanswered, and an idempotent producer would resend the batch until its delivery timeout. The limit comes
    with the stream's initial metadata, so the client refuses the batch at once, and the stream carries the next."""
    broker = broker_factory(env={"GOQUEUE_LIMITS_MAXREQUESTBYTES": "65536"})  # grpc's own limit: 128 KiB
    transport = GrpcBatchTransport(broker.grpc_target, timeout_s=10.0)
    try:
        topic = await new_topic(transport.client, "batch-stream-limit")
        oversized = bytes(batches.build_batch([(None, b"x" * 200_000, [])], 0))
        with anyio.fail_after(5), pytest.raises(RecordTooLarge, match="refused before sending"):
            await transport.send_batch(topic, 0, oversized, Acks.ALL, timeout_s=5.0)
        stream = transport._stream  # the one the refused batch was meant for
        assert stream is not None
        assert stream.open
        fits = bytes(batches.build_batch([(None, b"y" * 60_000, [])], 0))
        assert await transport.send_batch(topic, 0, fits, Acks.ALL, timeout_s=5.0) == 0
        assert transport._stream is stream
    finally:
        await transport.close()


async def test_produce_batch_stream_ends_with_invalid_argument_at_a_malformed_message(client: GrpcClient) -> None:
    """Bytes that are no ProduceBatchRequest end the stream (nothing can be answered in their place), after the
    answers of the requests before them."""
    topic = await new_topic(client, "batch-stream-malformed")
    good = pb.ProduceBatchRequest(topic=topic, partition=0, batch=bytes(batches.build_batch([(None, b"ok", [])], 0)))

    async def raw() -> AsyncIterator[bytes]:
        yield good.SerializeToString()
        yield b"\xff\xff\xff\xff not protobuf"

    call = client.channel.stream_stream("/goqueue.v1.GoQueue/ProduceBatchStream")(raw())
    answered = []

    async def read_all() -> None:
        async for answer in call:
            answered.append(pb.ProduceBatchResponse.FromString(answer))

    with anyio.fail_after(STREAM_TIMEOUT_S), pytest.raises(grpc.aio.AioRpcError) as ended:
        await read_all()
    assert [a.base_offset for a in answered] == [0]
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(ended.value.trailing_metadata() or ())[ERROR_CODE_KEY] == "INVALID_REQUEST"


async def test_fetch_stream_delivers_records_produced_after_it_started(
    client: GrpcClient, module_broker: BrokerProcess,
) -> None:
    topic = await new_topic(client, "follow")
    received: list[bytes | None] = []
    with anyio.fail_after(STREAM_TIMEOUT_S):
        async with contextlib.aclosing(client.fetch_stream(topic, 0, 0)) as stream:
            for n in range(3):  # each produce happens while the stream is already waiting
                await client.produce(topic, [record(f"late-{n}".encode())])
                while len(received) <= n:
                    received.extend(r.value for r in (await anext(stream)).records)
    assert received == [b"late-0", b"late-1", b"late-2"]

    # Closing the iterator cancelled the call: the broker's handler ended and counted it.
    async def cancelled_on_server() -> bool:
        async with httpx.AsyncClient(base_url=module_broker.url) as http:
            metrics = (await http.get("/metrics")).text
        wanted = {"api": "grpc", "op": "FetchStream", "code": "CANCELLED"}
        return any(sample.name == "goqueue_requests_total" and sample.labels == wanted and sample.value >= 1
                   for family in text_string_to_metric_families(metrics) for sample in family.samples)

    await async_wait_until(cancelled_on_server, 10.0, message="FetchStream cancelled on the broker")


async def test_idempotent_retry_returns_the_same_offsets_without_duplicates(client: GrpcClient) -> None:
    topic = await new_topic(client, "idempotent")
    await client.produce(topic, [record(b"before")], partition=0)
    records = [record(b"a"), record(b"b"), record(b"c")]
    producer = ProducerIdentity(producer_id=42, producer_epoch=0, base_sequence=0)
    first = await client.produce(topic, records, partition=0, producer=producer)
    retry = await client.produce(topic, records, partition=0, producer=producer)
    assert [o.offset for o in first.offsets] == [1, 2, 3]
    assert (retry.offsets, first.duplicate, retry.duplicate) == (first.offsets, False, True)
    fetched = await client.fetch(topic, 0, 0)
    assert [r.value for r in fetched.records] == [b"before", b"a", b"b", b"c"]

    following = await client.produce(topic, [record(b"d")], partition=0,
                                     producer=ProducerIdentity(42, 0, base_sequence=3))
    assert [o.offset for o in following.offsets] == [4]
    with pytest.raises(OutOfOrderSequence):
        await client.produce(topic, [record(b"gap")], partition=0, producer=ProducerIdentity(42, 0, 10))
    with pytest.raises(InvalidRequest, match="needs partition"):
        await client.produce(topic, records, producer=producer)


async def test_bad_input_gets_typed_errors(client: GrpcClient) -> None:
    topic = await new_topic(client, "bad-input")
    stub = client.stub
    with pytest.raises(PartitionNotFound):
        await client.produce(topic, [record(b"v")], partition=1)
    assert await rpc_status(stub.Produce(pb.ProduceRequest(topic=topic, partition=1, records=[pb.Record()]))) == (
        grpc.StatusCode.NOT_FOUND, "PARTITION_NOT_FOUND")
    assert await rpc_status(stub.Produce(pb.ProduceRequest(topic=topic, partition=-1, records=[pb.Record()]))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert await rpc_status(stub.Produce(pb.ProduceRequest(topic=topic, records=[pb.Record()], acks=99))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert await rpc_status(stub.Produce(pb.ProduceRequest(topic=topic))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert await rpc_status(stub.Produce(pb.ProduceRequest(topic="no-such-topic", records=[pb.Record()]))) == (
        grpc.StatusCode.NOT_FOUND, "TOPIC_NOT_FOUND")

    with pytest.raises(RecordTooLarge):
        await client.produce(topic, [record(b"x" * (2**20 + 1))])
    assert await rpc_status(stub.Produce(pb.ProduceRequest(topic=topic, records=[pb.Record(value=b"x" * 2**21)]))) \
        == (grpc.StatusCode.INVALID_ARGUMENT, "RECORD_TOO_LARGE")

    await client.produce(topic, [record(b"one")])
    with pytest.raises(OffsetOutOfRange):
        await client.fetch(topic, 0, 5)
    assert await rpc_status(stub.Fetch(pb.FetchRequest(topic=topic, partition=0, offset=5))) == (
        grpc.StatusCode.OUT_OF_RANGE, "OFFSET_OUT_OF_RANGE")
    assert await rpc_status(stub.Fetch(pb.FetchRequest(topic=topic, partition=0, offset=-1))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")
    assert await rpc_status(stub.Fetch(pb.FetchRequest(topic=topic, partition=3))) == (
        grpc.StatusCode.NOT_FOUND, "PARTITION_NOT_FOUND")
    assert await rpc_status(stub.Fetch(pb.FetchRequest(topic=topic, partition=0, max_records=0))) == (
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")


async def test_malformed_protobuf_is_invalid_argument(client: GrpcClient) -> None:
    produce_raw = client.channel.unary_unary("/goqueue.v1.GoQueue/Produce", request_serializer=None,
                                      response_deserializer=None)
    # field 1 (topic, a string) holding invalid UTF-8; then a length prefix running past the end
    for garbage in (b"\x0a\x01\xff", b"\x1a\x7f\x01"):
        assert await rpc_status(produce_raw(garbage, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST")


async def test_get_offsets_and_timestamp_lookup(client: GrpcClient) -> None:
    topic = await new_topic(client, "offsets")
    # two requests, two batches: the timestamp lookup resolves to a batch
    await client.produce(topic, [record(b"old", timestamp_ms=1_000)])
    await client.produce(topic, [record(b"new", timestamp_ms=5_000)])
    offsets = await client.offsets(topic, 0, timestamp_ms=2_000)
    assert offsets == {"earliest": 0, "latest": 2, "logEnd": 2, "forTimestamp": 1}
    assert (await client.offsets(topic, 0, timestamp_ms=9_000))["forTimestamp"] == 2  # none that new: log end
    assert (await client.offsets(topic, 0))["forTimestamp"] is None


# -- health and shutdown -------------------------------------------------------------------------------------------


async def test_health_service_reports_serving(client: GrpcClient) -> None:
    assert await client.health() == "SERVING"
    assert await client.health("goqueue.v1.GoQueue") == "SERVING"
    with pytest.raises(NotFound):
        await client.health("no.such.Service")


async def test_shutdown_ends_open_streams_promptly_and_cleanly(broker: BrokerProcess) -> None:
    never = anyio.Event()

    async def one_request_then_idle() -> AsyncIterator[list[RecordIn]]:
        yield [record(b"streamed")]
        await never.wait()  # an idle producer keeps its stream open
        yield []

    async with GrpcClient(broker.grpc_target) as client:
        topic = await new_topic(client, "shutdown")
        await client.produce(topic, [record(b"first")])
        with anyio.fail_after(STREAM_TIMEOUT_S):
            async with contextlib.aclosing(client.fetch_stream(topic, 0, 0)) as fetching, \
                    contextlib.aclosing(client.produce_stream(topic, one_request_then_idle())) as producing:
                assert [r.value for r in (await anext(fetching)).records] == [b"first"]
                assert [o.offset for o in (await anext(producing)).offsets] == [1]
                started = time.monotonic()
                broker.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
                with pytest.raises((NotReady, Unavailable)):
                    await drain(fetching)  # it may still deliver "streamed" first
                with pytest.raises((NotReady, Unavailable)):
                    await anext(producing)
        # Well inside broker.shutdownGrace (20 s): open streams did not hold the server open.
        assert time.monotonic() - started < 10.0
    assert await anyio.to_thread.run_sync(broker.stop) == 0
