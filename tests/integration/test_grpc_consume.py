"""Consumer groups over gRPC against a real `goqueue-broker`: the flow-controlled ConsumeStream, unary consume,
ack / nack / release, ordered membership and commits, and bad input.

Flow control is checked by what the rest of the group can still take: a stream granted N records of credit leases
exactly N, so another consumer of the same group gets every other record at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from broker_process import BrokerProcess

from goqueue.api.grpc.errors import ERROR_CODE_KEY
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.config import OffsetReset
from goqueue.errors import FencedGeneration, InvalidRequest, LeaseNotFound
from goqueue.models import ConsumeRequest, OffsetCommit, OffsetResetRequest, ResetTarget, TopicCreate
from goqueue.records import RecordIn
from goqueue_harness.waiting import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
async def client(module_broker: BrokerProcess) -> AsyncIterator[GrpcClient]:
    async with GrpcClient(module_broker.grpc_target, timeout_s=20.0) as grpc_client:
        yield grpc_client


async def topic_with(client: GrpcClient, name: str, count: int, partitions: int = 2) -> str:
    await client.create_topic(TopicCreate(name=name, partitions=partitions))
    # spread over the partitions: a call's keyless records would all go to one (the sticky partitioner)
    await client.produce(name, [RecordIn(None, f"{name}-{n}".encode(), [], partition=n % partitions)
                                for n in range(count)])
    return name


def subscribe(group: str, topic: str, credit: int, **fields: Any) -> Any:
    subscription = pb.ConsumeRequest(group=group, topic=topic, start_from=pb.START_FROM_EARLIEST,
                                     **({"consumer_id": "streamer"} | fields))
    return pb.ConsumeStreamRequest(subscription=subscription, credit=credit)


async def read_records(call: Any, count: int) -> list[Any]:
    """Responses from the stream until `count` records arrived."""
    records: list[Any] = []
    while len(records) < count:
        response = await call.read()
        assert response is not grpc.aio.EOF, f"the stream ended after {len(records)} of {count} records"
        records.extend(response.records)
    return records


async def status_of(call: Any) -> tuple[grpc.StatusCode, str | None]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read_records(call, 1)
    return caught.value.code(), dict(caught.value.trailing_metadata() or ()).get(ERROR_CODE_KEY)


async def test_stream_leases_only_what_the_credit_allows(client: GrpcClient, module_broker: BrokerProcess) -> None:
    topic = await topic_with(client, "flow", 50)
    call = client.stub.ConsumeStream()
    try:
        await call.write(subscribe("flow-group", topic, credit=3))
        first = await read_records(call, 3)
        assert len(first) == 3
        assert all(r.HasField("lease_id") and r.delivery_count == 1 for r in first)
        # The stream holds no credit now: it leased nothing more, so another consumer takes all the rest at once.
        with GoQueueClient(module_broker.url) as http:
            rest = http.consume("flow-group", ConsumeRequest(consumer_id="other", topic=topic, max_records=100,
                                                             start_from=OffsetReset.EARLIEST))
            assert len(rest.records) == 47
            assert http.inflight("flow-group").total == 50
        await client.produce(topic, [RecordIn(None, f"late-{n}".encode(), []) for n in range(10)])
        await call.write(pb.ConsumeStreamRequest(credit=4))
        more = await read_records(call, 4)
        assert len(more) == 4  # exactly the new credit, of the ten new records
        with GoQueueClient(module_broker.url) as http:
            left = http.consume("flow-group", ConsumeRequest(consumer_id="other", topic=topic, max_records=100))
            assert len(left.records) == 6
        acked = await client.ack("flow-group", [r.lease_id for r in [*first, *more]])
        assert acked.acked == 7
    finally:
        call.cancel()


async def test_stream_client_grants_credit_as_records_are_taken(client: GrpcClient,
                                                                module_broker: BrokerProcess) -> None:
    topic = await topic_with(client, "prefetch", 40)
    taken: list[str] = []
    request = ConsumeRequest(consumer_id="c", topic=topic, start_from=OffsetReset.EARLIEST)
    async with client.consume_stream("prefetch-group", request, prefetch=4) as stream:
        async for record in stream:
            taken.append(record.value or "")
            if len(taken) == 6:
                break
        # Six taken gave six credits back on top of the prefetch of four: the broker leases exactly ten, never
        # more, and the other thirty stay available to the group.
        with GoQueueClient(module_broker.url) as http:
            async def ten_leased() -> bool:
                return http.inflight("prefetch-group").total == 10

            await async_wait_until(ten_leased, 10, message="the stream's read-ahead leased")
            rest = http.consume("prefetch-group", ConsumeRequest(consumer_id="d", topic=topic, max_records=100,
                                                                 start_from=OffsetReset.EARLIEST))
            assert len(rest.records) == 30
    assert len(set(taken)) == 6


async def test_unary_consume_ack_nack_release(client: GrpcClient) -> None:
    topic = await topic_with(client, "settle", 6, partitions=1)
    request = ConsumeRequest(consumer_id="u", topic=topic, start_from=OffsetReset.EARLIEST, max_records=3, wait_ms=1000)
    got = await client.consume("settle-group", request)
    assert [r.value for r in got.records] == ["settle-0", "settle-1", "settle-2"]
    leases = [r.lease_id or "" for r in got.records]
    assert (await client.ack("settle-group", leases[:1])).acked == 1
    assert (await client.nack("settle-group", leases[1:2], reason="try later")).acked == 1
    assert (await client.release("settle-group", leases[2:])).acked == 1
    again = await client.consume("settle-group", request)
    assert {(r.value, r.delivery_count) for r in again.records} == {("settle-1", 2), ("settle-2", 1),
                                                                    ("settle-3", 1)}
    with pytest.raises(LeaseNotFound):
        await client.ack("settle-group", [f"{topic}/0/999/1/0"])
    assert (await client.ack("settle-group", leases[:1])).already_done == 1


async def test_ordered_group_over_grpc(client: GrpcClient) -> None:
    topic = await topic_with(client, "ordered-grpc", 8, partitions=2)
    a = await client.join_group("og", [topic], client_id="a")
    b = await client.join_group("og", [topic], client_id="b")
    assert (await client.heartbeat("og", a.member_id, a.generation)).rejoin
    a = await client.join_group("og", [topic], member_id=a.member_id, client_id="a")
    assert {tp.partition for tp in a.assignments} | {tp.partition for tp in b.assignments} == {0, 1}
    got = await client.consume("og", ConsumeRequest(member_id=a.member_id, generation=a.generation,
                                                    start_from=OffsetReset.EARLIEST, max_records=100, wait_ms=1000))
    (mine,) = {r.partition for r in got.records}
    committed = await client.commit("og", [OffsetCommit(topic=topic, partition=mine, offset=len(got.records))],
                                    member_id=a.member_id, generation=a.generation)
    assert committed.committed[0].offset == len(got.records)
    with pytest.raises(FencedGeneration):
        await client.commit("og", [OffsetCommit(topic=topic, partition=mine, offset=1)],
                            member_id=a.member_id, generation=a.generation - 1)
    await client.leave_group("og", b.member_id)
    assert (await client.heartbeat("og", a.member_id, a.generation)).rejoin


async def test_an_ordered_stream_closed_with_records_untaken_resumes_at_the_first_untaken(client: GrpcClient) -> None:
    """The broker moves an ordered member's read position as it sends; records the caller never took (buffered, or
    lost with a broken stream) must come on the next stream, in order (issue 12 item 5): the client keeps positions."""
    topic = await topic_with(client, "ordered-resume", 10, partitions=1)
    member = await client.join_group("ores", [topic], client_id="a")
    request = ConsumeRequest(member_id=member.member_id, generation=member.generation,
                             start_from=OffsetReset.EARLIEST)
    taken: list[tuple[int, bytes]] = []
    async with client.consume_stream("ores", request, prefetch=10) as stream:
        async for record in stream:
            taken.append((record.offset, (record.value or "").encode()))
            if len(taken) == 3:
                break
        assert stream.buffered > 0, "the broker sent more than was taken: the case this test is about"
    # a small prefetch: several answers on one stream, each continuing where the previous ended
    async with client.consume_stream("ores", request, prefetch=2) as stream:
        async def rest() -> None:
            async for record in stream:
                taken.append((record.offset, (record.value or "").encode()))
                if len(taken) == 10:
                    return
        await asyncio.wait_for(rest(), 20)
    assert [offset for offset, _ in taken] == list(range(10))
    assert [value for _, value in taken] == [f"{topic}-{n}".encode() for n in range(10)]


async def test_stream_shows_pause_and_ends_after_half_close(client: GrpcClient,
                                                            module_broker: BrokerProcess) -> None:
    topic = await topic_with(client, "paused-stream", 4, partitions=1)
    with GoQueueClient(module_broker.url) as http:
        http.reset_offsets("pg", OffsetResetRequest(topic=topic, to=ResetTarget.EARLIEST))  # creates the group
        http.pause("pg")
        call = client.stub.ConsumeStream()
        try:
            await call.write(subscribe("pg", topic, credit=2))
            quiet = await call.read()
            assert (quiet.paused, list(quiet.records)) == (True, [])
            http.resume("pg")
            records = await read_records(call, 2)
            assert len(records) == 2
            await call.done_writing()  # half-close with no credit left: the broker ends the stream
            assert await call.read() is grpc.aio.EOF
            assert await call.code() == grpc.StatusCode.OK
        finally:
            call.cancel()


async def test_internal_topics_refuse_grpc_produce(client: GrpcClient) -> None:
    with pytest.raises(InvalidRequest, match="internal topic"):
        await client.produce("__consumer_state", [RecordIn(b"k", b"v", [])])
    with pytest.raises(InvalidRequest, match="internal topic"):
        await client.produce_batch("__consumer_state", 0, b"\x00" * 70)

    async def one() -> AsyncIterator[list[RecordIn]]:
        yield [RecordIn(b"k", b"v", [])]

    async def stream_one() -> None:
        async with contextlib.aclosing(client.produce_stream("__consumer_state", one())) as responses:
            async for _ in responses:
                pass

    with pytest.raises(InvalidRequest, match="internal topic"):
        await stream_one()


BAD_STREAMS: list[tuple[str, list[Any]]] = [
    ("no subscription first", [pb.ConsumeStreamRequest(credit=1)]),
    ("negative credit", [subscribe("bad-stream", "bad-topic", credit=-1)]),
    ("credit over the bound", [subscribe("bad-stream", "bad-topic", credit=100_001)]),
    ("a second subscription", [subscribe("bad-stream", "bad-topic", credit=0),
                               subscribe("bad-stream", "bad-topic", credit=1)]),
    ("no group", [pb.ConsumeStreamRequest(subscription=pb.ConsumeRequest(consumer_id="c", topic="t"), credit=1)]),
    ("consumer and member", [subscribe("bad-stream", "bad-topic", credit=1, member_id="m", generation=0)]),
    ("unknown start_from", [pb.ConsumeStreamRequest(
        subscription=pb.ConsumeRequest(group="g", consumer_id="c", topic="t", start_from=7), credit=1)]),
]


@pytest.mark.parametrize(("case", "requests"), BAD_STREAMS, ids=[case for case, _ in BAD_STREAMS])
async def test_bad_consume_streams_are_invalid_argument(client: GrpcClient, case: str, requests: list[Any]) -> None:
    call = client.stub.ConsumeStream()
    try:
        for request in requests:
            await call.write(request)
        assert await status_of(call) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_REQUEST"), case
    finally:
        call.cancel()


async def test_bad_unary_group_calls(client: GrpcClient) -> None:
    for call in (client.stub.Consume(pb.ConsumeRequest(consumer_id="c", topic="t")),
                 client.stub.Ack(pb.AckRequest(group="g")),
                 client.stub.Nack(pb.NackRequest(group="g", lease_ids=["x/0/0/1/0"], delay_s=-1)),
                 client.stub.Heartbeat(pb.HeartbeatRequest(group="g", member_id="m", generation=-1)),
                 client.stub.CommitOffsets(pb.CommitOffsetsRequest(group="g")),
                 client.stub.JoinGroup(pb.JoinGroupRequest(group="g"))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(caught.value.trailing_metadata() or ()).get(ERROR_CODE_KEY) == "INVALID_REQUEST"
