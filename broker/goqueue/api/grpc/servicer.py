"""The `goqueue.v1.GoQueue` service: each method converts its request, calls `Broker`, converts the answer.

Decisions live in `Broker`; shapes live in `convert`; failures are mapped once by `translate_errors`. The
streams are the only logic here:

* ProduceStream and ProduceBatchStream pipeline (`_pipelined`): a reader task reads up to `PRODUCE_STREAM_WINDOW`
  requests ahead and starts each produce as its own task, so many requests share one group commit; responses are
  sent in request order. Requests beyond the window stay unread, and gRPC's flow control holds the client back.
* FetchStream long-polls in slices of `FETCH_STREAM_POLL_S` and sends one response per non-empty fetch, so it sees
  new records at once yet notices a shutdown within a slice.

On shutdown `close()` ends every kind of stream with NOT_READY (UNAVAILABLE, retriable), so a client reconnects to
another broker instead of holding the server open for its whole grace period.

Produce and topic administration refuse internal topics (`__consumer_state`) through `adapter_rules`, as the HTTP
API does. The consumer-group rpcs, with the
flow-controlled ConsumeStream, live in `group_servicer.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeAlias

import grpc

from goqueue import limits
from goqueue.api.adapter_rules import produce_request, refuse_internal_topic
from goqueue.api.gatekeeper import Access, Gatekeeper
from goqueue.api.grpc import convert
from goqueue.api.grpc.errors import OK_CODE, translate_errors
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.group_servicer import GroupRpcs
from goqueue.api.grpc.stream_metadata import MAX_REQUEST_BYTES_KEY
from goqueue.broker import Broker
from goqueue.consumers.router import GroupRouter
from goqueue.errors import GoQueueError, InvalidRequest, NotReady, RecordTooLarge
from goqueue.security.acls import Operation, topic

STREAM_BATCH_OP = "ProduceBatchStream.batch"  # the `op` label of goqueue_requests for one batch on the stream
PRODUCE_STREAM_WINDOW = 64  # requests read ahead per ProduceStream: enough to fill group commits, bounded memory
# After a refused request, a ProduceStream ends once its client has half-closed or written nothing for
# REFUSAL_QUIET_S, and at most REFUSAL_DRAIN_MAX_S after the refusal (`_StreamReader.drain`). The quiet time is
# counted between requests read here, so it must cover a client's pause between writes on a slow link.
REFUSAL_QUIET_S = 0.2
REFUSAL_DRAIN_MAX_S = 2.0
FETCH_STREAM_POLL_S = 0.5  # one long-poll slice of FetchStream: bounds how late a stream notices shutdown

Context: TypeAlias = grpc.aio.ServicerContext


class GoQueueServicer(GroupRpcs):
    """Implements every rpc of `service GoQueue` in goqueue.proto (the server binds them by name)."""

    def __init__(self, broker: Broker, groups: GroupRouter | None, gatekeeper: Gatekeeper) -> None:
        self.broker = broker
        self.groups = groups  # None: the group rpcs answer NOT_READY
        self.gatekeeper = gatekeeper
        self.metrics = broker.metrics
        self._closing = asyncio.Event()
        self._readers: set[asyncio.Task[None]] = set()
        # Each batch on a ProduceBatchStream is a request of its own: counted per batch, apart from the stream calls.
        self._stream_batch_ok = self.metrics.requests.labels("grpc", STREAM_BATCH_OP, OK_CODE)
        self._batch_stream_metadata = ((MAX_REQUEST_BYTES_KEY, str(broker.settings.limits.max_request_bytes)),)

    def close(self) -> None:
        """Shutdown: end open streams with NOT_READY (new calls are refused by the server itself)."""
        self._closing.set()
        for reader in self._readers:
            reader.cancel()

    # -- authentication -----------------------------------------------------------------------------------------

    @translate_errors
    async def ScramStart(self, request: Any, context: Context) -> Any:  # noqa: N802
        started = self.gatekeeper.scram_start(request.client_first)
        return pb.ScramStartResponse(exchange_id=started.exchange_id, server_first=started.server_first)

    @translate_errors
    async def ScramFinish(self, request: Any, context: Context) -> Any:  # noqa: N802
        finished = self.gatekeeper.scram_finish(request.exchange_id, request.client_final)
        return pb.ScramFinishResponse(server_final=finished.server_final, token=finished.token,
                                      principal=str(finished.principal),
                                      expires_at_ms=round(finished.expires_at_s * 1000))

    # -- topics -------------------------------------------------------------------------------------------------

    @translate_errors
    async def CreateTopic(self, request: Any, context: Context) -> Any:  # noqa: N802 - rpc names are the proto's
        spec = convert.topic_create_from_proto(request)
        self._caller(context).check(topic(spec.name), Operation.CREATE)
        refuse_internal_topic(spec.name)
        return convert.topic_to_proto(await self.broker.create_topic(spec))

    @translate_errors
    async def ListTopics(self, request: Any, context: Context) -> Any:  # noqa: N802
        access = self._caller(context)
        return pb.ListTopicsResponse(topics=[convert.topic_to_proto(t) for t in self.broker.list_topics()
                                             if access.allowed(topic(t.name), Operation.DESCRIBE)])

    @translate_errors
    async def DescribeTopic(self, request: Any, context: Context) -> Any:  # noqa: N802
        self._caller(context).check(topic(request.name), Operation.DESCRIBE)
        self.broker.check_ready()
        details = not request.HasField("details") or request.details
        return convert.topic_to_proto(await self.broker.describe_topic(request.name, details=details))

    @translate_errors
    async def UpdateTopic(self, request: Any, context: Context) -> Any:  # noqa: N802
        self._caller(context).check(topic(request.name), Operation.ALTER)
        refuse_internal_topic(request.name)
        update = convert.topic_update_from_proto(request)
        return convert.topic_to_proto(await self.broker.update_topic(request.name, update.partitions, update.config))

    @translate_errors
    async def DeleteTopic(self, request: Any, context: Context) -> Any:  # noqa: N802
        self._caller(context).check(topic(request.name), Operation.DELETE)
        refuse_internal_topic(request.name)
        await self.broker.delete_topic(request.name)
        return pb.DeleteTopicResponse()

    # -- produce ------------------------------------------------------------------------------------------------

    @translate_errors
    async def Produce(self, request: Any, context: Context) -> Any:  # noqa: N802
        return await self._produce(request, self._caller(context))

    async def _produce(self, request: Any, access: Access) -> Any:
        access.check(topic(request.topic), Operation.PRODUCE)
        with produce_request(self.metrics, "grpc", request.topic):
            call = convert.produce_from_proto(request)
            offsets, duplicate = await self.broker.produce(
                call.topic, call.records, acks=call.acks, partition=call.partition, producer=call.producer)
        return convert.produce_response_to_proto(call.topic, offsets, duplicate)

    @translate_errors
    async def ProduceStream(self, requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:  # noqa: N802
        async for response in self._pipelined(requests, self._caller(context), self._produce):
            yield response

    @translate_errors
    async def ProduceBatchStream(self, requests: AsyncIterator[Any],  # noqa: N802
                                 context: Context) -> AsyncIterator[Any]:
        access = self._caller(context)  # an unauthenticated caller is refused before the client may write
        # "This broker serves the stream", and its limits.maxRequestBytes (api/grpc/stream_metadata.py).
        await context.send_initial_metadata(self._batch_stream_metadata)
        async for response in self._pipelined(requests, access, self._produce_batch_or_refusal):
            yield response

    async def _produce_batch_or_refusal(self, request: Any, access: Access) -> Any:
        try:
            answer = await self._produce_batch(request, access)
        except GoQueueError as error:
            self.metrics.requests.labels("grpc", STREAM_BATCH_OP, error.code).inc()
            return pb.ProduceBatchResponse(topic=request.topic, partition=request.partition, base_offset=-1,
                                           last_offset=-1, error=convert.request_error_to_proto(error))
        self._stream_batch_ok.inc()
        return answer

    async def _pipelined(self, requests: AsyncIterator[Any], access: Access,
                         produce: Callable[[Any, Access], Coroutine[Any, Any, Any]]) -> AsyncIterator[Any]:
        """`produce` each request of a stream, up to PRODUCE_STREAM_WINDOW at once; the responses in request order.

        A refused request ends the stream with its error, but only once the client has stopped writing
        (`_StreamReader.drain`): a client whose write meets the stream's end gets INTERNAL from grpc.aio in place of
        the refusal, with no way to recover it."""
        stream = _StreamReader(requests, access, produce)
        reader = asyncio.create_task(stream.read(), name="grpc-produce-reader")
        self._readers.add(reader)
        try:
            while (task := await stream.pending.get()) is not None:
                try:
                    response = await task
                except GoQueueError:
                    await stream.drain(reader)
                    raise
                stream.slots.release()
                yield response
            await asyncio.wait([reader])  # it put the end marker in its last step; let that step finish
            if reader.cancelled():
                raise NotReady("the broker is shutting down; reconnect and resend unacknowledged requests")
            reader.result()  # a malformed request or a broken stream ends the call with its error
        finally:
            self._readers.discard(reader)
            reader.cancel()
            leftovers = [task for task in _drain(stream.pending) if task is not None]
            for task in leftovers:
                task.cancel()  # the append may still happen; its acknowledgement is lost with the stream
            await asyncio.gather(reader, *leftovers, return_exceptions=True)

    @translate_errors
    async def ProduceBatch(self, request: Any, context: Context) -> Any:  # noqa: N802
        return await self._produce_batch(request, self._caller(context))

    async def _produce_batch(self, request: Any, access: Access) -> Any:
        access.check(topic(request.topic), Operation.PRODUCE)
        with produce_request(self.metrics, "grpc", request.topic):
            partition = convert.partition_index(request.partition)
            limit = self.broker.settings.limits.max_request_bytes
            if len(request.batch) > limit:
                raise RecordTooLarge(f"batch is {len(request.batch)} bytes; limits.maxRequestBytes is {limit}")
            if not request.batch:
                raise InvalidRequest("ProduceBatch needs a record batch")
            result = await self.broker.append_batch(
                request.topic, partition, bytearray(request.batch), convert.acks_from_proto(request.acks))
        return pb.ProduceBatchResponse(topic=request.topic, partition=partition, base_offset=result.base_offset,
                                       last_offset=result.last_offset, duplicate=result.duplicate)

    # -- fetch --------------------------------------------------------------------------------------------------

    @translate_errors
    async def Fetch(self, request: Any, context: Context) -> Any:  # noqa: N802
        call = convert.fetch_from_proto(request)
        self._caller(context).check(topic(call.topic), Operation.CONSUME)
        result = await self.broker.fetch(call.topic, call.partition, call.offset, call.max_bytes, call.wait_s)
        response, count = convert.fetch_response_to_proto(call, result)
        self.metrics.messages_fetched.labels(call.topic).inc(count)
        return response

    @translate_errors
    async def FetchStream(self, request: Any, context: Context) -> AsyncIterator[Any]:  # noqa: N802
        call = convert.fetch_from_proto(request)
        self._caller(context).check(topic(call.topic), Operation.CONSUME)
        offset = call.offset
        while not self._closing.is_set():
            result = await self.broker.fetch(call.topic, call.partition, offset, call.max_bytes, FETCH_STREAM_POLL_S)
            if not result.data:
                continue
            response, count = convert.fetch_response_to_proto(
                convert.FetchCall(call.topic, call.partition, offset, call.max_records, call.max_bytes,
                                  call.raw_batches), result)
            offset = response.next_offset
            if count == 0 and not call.raw_batches:
                continue  # only a compaction gap was crossed: nothing to send
            self.metrics.messages_fetched.labels(call.topic).inc(count)
            yield response
        raise NotReady("the broker is shutting down; resume from the last next_offset on another connection")

    @translate_errors
    async def GetOffsets(self, request: Any, context: Context) -> Any:  # noqa: N802
        self._caller(context).check(topic(request.topic), Operation.DESCRIBE)
        timestamp_ms = request.timestamp_ms if request.HasField("timestamp_ms") else None
        if timestamp_ms is not None:
            convert.in_range(timestamp_ms, limits.TIMESTAMP_MS, "timestamp_ms")
        offsets = await self.broker.partition_offsets_routed(request.topic, convert.partition_index(request.partition),
                                                timestamp_ms)
        return convert.offsets_to_proto(offsets)


class _StreamReader:
    """The reading half of a pipelined produce stream: one produce task per request, in order, at most
    PRODUCE_STREAM_WINDOW unanswered (`slots`: a slot is taken before a request is read and freed once it is
    answered, so at most that many produce tasks, plus the end marker, are ever queued in `pending`).

    Order on disk follows request order because `Broker.produce` and `Broker.append_batch` submit to the writer
    before their first suspension, and tasks take their first step in creation order.

    After a refusal (`drain`) it reads on and drops what comes, until the client half-closes or has written nothing
    for REFUSAL_QUIET_S (REFUSAL_DRAIN_MAX_S at most), so that the stream ends when the client no longer writes.
    Produce tasks already started for requests read before the refusal run on meanwhile (their acknowledgements
    are lost with the stream). A malformed message, which the reader itself raises, still ends the stream at once.
    """

    def __init__(self, requests: AsyncIterator[Any], access: Access,
                 produce: Callable[[Any, Access], Coroutine[Any, Any, Any]]) -> None:
        self.requests, self.access, self.produce = requests, access, produce
        self.slots = asyncio.Semaphore(PRODUCE_STREAM_WINDOW)
        self.pending: asyncio.Queue[asyncio.Task[Any] | None] = asyncio.Queue()
        self.refused = False
        self.last_read = 0.0

    async def read(self) -> None:
        try:
            while True:
                if not self.refused:
                    await self.slots.acquire()
                request = await anext(self.requests, None)
                self.last_read = time.monotonic()
                if request is None:
                    return
                if not self.refused:
                    self.pending.put_nowait(asyncio.create_task(self.produce(request, self.access)))
        finally:
            self.pending.put_nowait(None)

    async def drain(self, reader: asyncio.Task[None]) -> None:
        """Drop the client's further requests until it stops writing; the caller then ends the stream."""
        self.refused = True
        self.slots.release()  # a reader waiting for a slot goes on reading
        started = self.last_read = time.monotonic()
        while not reader.done():
            wait_s = min(self.last_read + REFUSAL_QUIET_S, started + REFUSAL_DRAIN_MAX_S) - time.monotonic()
            if wait_s <= 0:
                return
            await asyncio.wait([reader], timeout=wait_s)


def _drain(queue: asyncio.Queue[asyncio.Task[Any] | None]) -> list[asyncio.Task[Any] | None]:
    items = []
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            items.append(queue.get_nowait())
    return items
