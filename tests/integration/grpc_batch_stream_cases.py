"""The batching producer's gRPC wire (`goqueue.client.grpc_batch_stream`, `grpc_batch_transport.py`) against a
scripted gRPC broker in this process, on loopback: batches share one ProduceBatchStream and are in flight together;
a refused batch fails only its own records and the stream goes on; an unanswered batch times out and is resent on a
new stream; a broker without the stream gets unary ProduceBatch calls.

The real broker's side of the stream is tested in `test_grpc_api.py`, the producer's resends across a real failover in
`test_producer_failover.py`, and the session token on streams in `test_security.py`.
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import grpc
import pytest

from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.auth import Credentials
from goqueue.client.delivery import DeliveryPolicy
from goqueue.client.grpc_batch_stream import BatchStream
from goqueue.client.grpc_batch_transport import GrpcBatchTransport
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.producer import Producer, ProducerSettings
from goqueue.errors import GoQueueError, RecordTooLarge, Timeout, Unavailable
from goqueue.models import Acks
from goqueue.records import RecordIn
from goqueue.storage.batch import build_batch, decode_records

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

QUICK = ProducerSettings(delivery=DeliveryPolicy(timeout_s=20, backoff_initial_s=0.01, backoff_max_s=0.01))


class ScriptedBroker:
    """Two partitions; writes every batch it answers. `refuse` names record values whose batch is answered
    RECORD_TOO_LARGE; `silent` ones are not answered (once), `slow` ones after that many seconds; the first stream
    receives `hold_until` requests before it answers any. Without `stream` it answers the stream UNIMPLEMENTED, as a
    broker from before it does."""

    def __init__(self, *, stream: bool = True, hold_until: int = 1) -> None:
        self.stream = stream
        self.hold_until = hold_until
        self.refuse: set[bytes] = set()
        self.silent: set[bytes] = set()
        self.slow: dict[bytes, float] = {}
        self.misroute = False  # answers name another partition than the request's
        self.written: list[tuple[int, bytes]] = []
        self.streams = 0
        self.unary_calls = 0
        self.most_in_flight = 0

    def _write(self, request: Any) -> Any:
        values = [record.value for record in decode_records(request.batch)]
        base = len(self.written)
        self.written.extend((request.partition, value or b"") for value in values)
        return pb.ProduceBatchResponse(topic=request.topic, partition=request.partition, base_offset=base,
                                       last_offset=base + len(values) - 1)

    async def describe_topic(self, request: Any, _context: Any) -> Any:
        return pb.Topic(name=request.name, partitions=2, replication_factor=1)

    async def produce_batch(self, request: Any, _context: Any) -> Any:
        self.unary_calls += 1
        return self._write(request)

    async def produce_batch_stream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        if not self.stream:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.streams += 1
        await context.send_initial_metadata(())
        hold_until = self.hold_until if self.streams == 1 else 1
        received: list[Any] = []
        answered = 0
        async for request in requests:
            received.append(request)
            self.most_in_flight = max(self.most_in_flight, len(received) - answered)
            if len(received) < hold_until:
                continue
            while answered < len(received):
                next_one = received[answered]
                values = {record.value for record in decode_records(next_one.batch)}
                if values & self.silent:
                    self.silent -= values  # answered next time it is sent
                    break
                answered += 1
                await asyncio.sleep(max([self.slow.get(value or b"", 0.0) for value in values]))
                if values & self.refuse:
                    refusal = pb.RequestError(code=RecordTooLarge.code, message=f"refused {values}")
                    yield pb.ProduceBatchResponse(topic=next_one.topic, partition=next_one.partition, error=refusal)
                else:
                    written = self._write(next_one)
                    written.partition += self.misroute
                    yield written


class ScriptedServer:
    """One in-process gRPC server for the module, serving whichever `ScriptedBroker` the running test set."""

    def __init__(self) -> None:
        self.script = ScriptedBroker()
        self.server: Any = None
        self.target = ""

    async def start(self) -> None:
        def unary(name: str, request_type: Any, response_type: Any) -> Any:
            async def call(request: Any, context: Any) -> Any:
                return await getattr(self.script, name)(request, context)
            return grpc.unary_unary_rpc_method_handler(call, request_deserializer=request_type.FromString,
                                                       response_serializer=response_type.SerializeToString)

        async def stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            async for response in self.script.produce_batch_stream(requests, context):
                yield response

        methods = {"DescribeTopic": unary("describe_topic", pb.DescribeTopicRequest, pb.Topic),
                   "ProduceBatch": unary("produce_batch", pb.ProduceBatchRequest, pb.ProduceBatchResponse),
                   "ProduceBatchStream": grpc.stream_stream_rpc_method_handler(
                       stream, request_deserializer=pb.ProduceBatchRequest.FromString,
                       response_serializer=pb.ProduceBatchResponse.SerializeToString)}
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("goqueue.v1.GoQueue", methods),))
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        await self.server.start()


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[ScriptedServer]:
    """Module-scoped and async, so the module's tests share one event loop: grpc.aio's poller stays bound to the
    loop it started on, and a test's own loop, closed under it, would fail the next test."""
    scripted = ScriptedServer()
    await scripted.start()
    yield scripted
    await scripted.server.stop(None)
    del scripted.server
    gc.collect()  # every grpc object of this loop gone before it closes, so grpc.aio lets go of the loop


async def produce(server: ScriptedServer, broker: ScriptedBroker, sends: list[tuple[int, bytes]],
                  timeout_s: float = 10, targets: list[str] | None = None) -> list[BaseException | int]:
    """Send every (partition, value) at once through a Producer on the gRPC transport: each one's offset or error."""
    server.script = broker
    async with Producer(GrpcBatchTransport(targets or [server.target], timeout_s), QUICK) as producer:
        futures = [await producer.send("t", RecordIn(None, value, [], partition=partition))
                   for partition, value in sends]
        results = await asyncio.gather(*futures, return_exceptions=True)
    return [r if isinstance(r, BaseException) else r.offset for r in results]


async def test_batches_to_two_partitions_share_one_stream_and_are_in_flight_together(server: ScriptedServer) -> None:
    broker = ScriptedBroker(hold_until=2)  # answers nothing until both partitions' batches arrived
    results = await produce(server, broker, [(0, b"a"), (1, b"b")])
    assert all(isinstance(r, int) for r in results), results
    assert (broker.streams, broker.unary_calls, broker.most_in_flight) == (1, 0, 2)
    assert sorted(broker.written) == [(0, b"a"), (1, b"b")]


async def test_a_refused_batch_fails_its_own_records_and_the_stream_goes_on(server: ScriptedServer) -> None:
    broker = ScriptedBroker(hold_until=2)
    broker.refuse = {b"too large"}
    results = await produce(server, broker, [(0, b"too large"), (1, b"fine")])
    assert isinstance(results[0], RecordTooLarge), results
    assert isinstance(results[1], int), results
    assert (broker.written, broker.streams) == ([(1, b"fine")], 1)


async def test_an_unanswered_batch_times_out_and_is_resent_on_a_new_stream(server: ScriptedServer) -> None:
    broker = ScriptedBroker()
    broker.silent = {b"lost answer"}
    results = await produce(server, broker, [(0, b"lost answer")], timeout_s=0.5)
    assert isinstance(results[0], int), results
    assert (broker.streams, broker.written) == (2, [(0, b"lost answer")])


async def test_a_broker_without_the_stream_gets_unary_calls(server: ScriptedServer) -> None:
    broker = ScriptedBroker(stream=False)
    results = await produce(server, broker, [(0, b"a"), (1, b"b"), (0, b"c")])
    assert all(isinstance(r, int) for r in results), results
    assert broker.unary_calls >= 2
    assert sorted(broker.written) == [(0, b"a"), (0, b"c"), (1, b"b")]


async def test_a_stream_that_cannot_be_opened_fails_unsent_and_the_next_goes_to_the_next_broker(
        server: ScriptedServer) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{unused.getsockname()[1]}"
    server.script = ScriptedBroker()
    transport = GrpcBatchTransport([dead, server.target], 10)
    batch = bytes(build_batch([(None, b"a", [])], 0))
    try:
        with pytest.raises(Unavailable, match=f"cannot open a produce stream to {dead}"):
            await transport.send_batch("t", 0, batch, Acks.ALL, 10)
        assert await transport.send_batch("t", 0, batch, Acks.ALL, 10) == 0
    finally:
        await transport.close()
    assert (server.script.streams, server.script.written) == (1, [(0, b"a")])


def one_record(value: bytes) -> bytes:
    return bytes(build_batch([(None, value, [])], 0))


async def test_a_batch_timed_out_behind_answered_ones_leaves_the_stream_open(server: ScriptedServer) -> None:
    """Answers kept coming after it was written: the stream is not stuck, only slow for that batch. Its late answer
    is matched to its place and dropped, and the stream serves the next batch."""
    broker = server.script = ScriptedBroker()
    broker.slow = {b"answered late": 0.3, b"too slow": 2.0}
    client = GrpcClient(server.target)
    stream = BatchStream(client)
    try:
        late = asyncio.create_task(stream.send("t", 0, one_record(b"answered late"), Acks.ALL, 10))
        await asyncio.sleep(0.05)
        with pytest.raises(Timeout):
            await stream.send("t", 1, one_record(b"too slow"), Acks.ALL, 1.0)
        assert (await late).base_offset == 0
        assert stream.open
        assert (await stream.send("t", 0, one_record(b"next"), Acks.ALL, 10)).base_offset == 2
    finally:
        await stream.close()
        await client.close()
    assert broker.streams == 1


async def test_a_stream_whose_session_cannot_be_had_fails_its_batch_at_once(server: ScriptedServer) -> None:
    """The token interceptor's own error (here: no SCRAM service at all) ends the stream with that error, rather
    than leave the batch waiting out its timeout."""
    server.script = ScriptedBroker()
    transport = GrpcBatchTransport(server.target, 30, credentials=Credentials("someone", "secret"))
    try:
        with anyio.fail_after(10), pytest.raises(GoQueueError) as refused:
            await transport.send_batch("t", 0, one_record(b"a"), Acks.ALL, 30)
        assert not isinstance(refused.value, Timeout)
    finally:
        await transport.close()
    assert server.script.written == []


async def test_an_answer_for_another_partition_than_the_next_ends_the_stream(server: ScriptedServer) -> None:
    """Never given to the wrong sender: the batch is failed as retriable (the producer's resend settles it)."""
    broker = server.script = ScriptedBroker()
    broker.misroute = True
    client = GrpcClient(server.target)
    stream = BatchStream(client)
    try:
        with pytest.raises(Unavailable, match="t/1 where t/0 was next"):
            await stream.send("t", 0, one_record(b"a"), Acks.ALL, 10)
        assert not stream.open
    finally:
        await stream.close()
        await client.close()
