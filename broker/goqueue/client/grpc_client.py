"""A thin, typed, asyncio gRPC client of GoQueue (the benchmark's and the tests' fast path).

It speaks `goqueue.v1.GoQueue` and returns the same domain values as the HTTP client (`TopicInfo`,
`ProduceResponse` …). A failed call raises the `GoQueueError` subclass named by the `goqueue-error-code` trailing
metadata (`error_for_code`), so callers catch `TopicNotFound` whichever door they used; a call that never reached a
broker raises `Unavailable`. Use it as `async with GrpcClient("host:9000") as client:`; the channel is opened on
first use, inside the caller's event loop, and closed on exit.

Targets: one `host:port` or several (`"a:9000,b:9000"`, `bootstrap.py`); a call that cannot reach one goes to the
next, as in the HTTP client.

Produce (`produce`) is idempotent and retried through failovers exactly as the HTTP client's (`grpc_producer.py`):
one call per partition, stamped, sent again after every retriable error until the delivery timeout.
`produce_stream`, `produce_batch` and `produce_batch_stream` are sent once, as given (stamp them with a producer to
retry them safely; `producer.py` does, over `grpc_batch_stream.py`).

Authentication: with `credentials` the client runs a SCRAM-SHA-512 exchange (ScramStart/ScramFinish) with the broker
it calls and sends the session token as metadata `authorization` on every call, streams included (`grpc_auth.py`),
renewing it before it expires and once more when a call is refused UNAUTHENTICATED.

Consumer groups: unary calls as over HTTP (join, heartbeat, consume, ack, nack, release, commit), retried like the
HTTP client's while the group's coordinator moves (NOT_COORDINATOR, NOT_READY, NOT_LEADER, UNAVAILABLE), and a
flow-controlled stream (`consume_stream`, see `consume_stream.py`). The groups the client joined or consumed from as
a member are left on `close()` (`membership.py`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from goqueue.api.grpc import convert, convert_groups
from goqueue.api.grpc.errors import ERROR_CODE_KEY
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.generated import goqueue_pb2_grpc as pb_grpc
from goqueue.client.auth import Credentials, TokenHolder, client_final, verify_server
from goqueue.client.bootstrap import ServerList
from goqueue.client.consume_stream import ConsumeStream
from goqueue.client.delivery import DEFAULT_DELIVERY_TIMEOUT_S, DeliveryPolicy, backoff_s
from goqueue.client.grpc_auth import bearer_token_interceptors
from goqueue.client.grpc_producer import GrpcProducer
from goqueue.client.http import RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_S, RETRY_CODES
from goqueue.client.membership import LEAVE_TIMEOUT_S, Memberships
from goqueue.client.positions import ReadPositions
from goqueue.client.tls import ClientTls
from goqueue.errors import (
    GoQueueError,
    GroupNotFound,
    InternalError,
    InvalidRequest,
    NotFound,
    Overloaded,
    RecordTooLarge,
    Timeout,
    Unauthenticated,
    Unavailable,
    UnknownMember,
    error_for_code,
)
from goqueue.models import (
    AckResponse,
    Acks,
    CommitRequest,
    CommitResponse,
    ConsumeRequest,
    ConsumeResponse,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    OffsetCommit,
    ProduceResponse,
    TopicCreate,
    TopicInfo,
    TopicUpdate,
)
from goqueue.records import ProducerIdentity, RecordIn
from goqueue.storage.batch import Record

DEFAULT_TIMEOUT_S = 30.0
MAX_MESSAGE_BYTES = 256 * 2**20  # above any broker's limits: the broker's own limits decide
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedRecords:
    """One fetch: decoded `records`, or with raw_batches the whole `batches` as stored (records then empty)."""

    topic: str
    partition: int
    records: list[Record]
    batches: bytes
    next_offset: int
    high_watermark: int
    log_start_offset: int


@dataclass(frozen=True)
class BatchOffsets:
    """Where a ProduceBatch landed: offsets base_offset..last_offset of one partition (-1 with acks=0)."""

    topic: str
    partition: int
    base_offset: int
    last_offset: int
    duplicate: bool


def batch_offsets_from_proto(response: Any) -> BatchOffsets:
    return BatchOffsets(topic=response.topic, partition=response.partition, base_offset=response.base_offset,
                        last_offset=response.last_offset, duplicate=response.duplicate)


def error_from_rpc(exc: grpc.aio.AioRpcError, target: str) -> GoQueueError:
    """The typed error a failed call stands for: by its GoQueue code when the broker sent one, else by status."""
    details = exc.details() or ""
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_CODE_KEY:
            return error_for_code(str(value))(details)
    status = exc.code()
    if status == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"cannot reach {target}: {details}")
    if status == grpc.StatusCode.CANCELLED:  # the server ended the call unanswered: a broker shutting down
        return Unavailable(f"{target} ended the call without an answer (shutting down?): {details}")
    if status == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(f"{target} did not answer in time: {details}")
    if status == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if "larger than max" in details:  # grpc's own message size limit, before the broker saw the request
            return RecordTooLarge(details)
        return Overloaded(details)
    if status == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequest(details)
    if status == grpc.StatusCode.NOT_FOUND:  # e.g. the health service asked about an unknown service
        return NotFound(details or f"not found on {target}")
    return InternalError(f"{status.name} from {target}: {details}")


def _transport_failure(exc: grpc.aio.AioRpcError) -> bool:
    """The call got no GoQueue answer: the target could not be reached, did not answer in time, or stopped."""
    sent_by_broker = any(key == ERROR_CODE_KEY for key, _ in exc.trailing_metadata() or ())
    return not sent_by_broker and exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                                 grpc.StatusCode.CANCELLED)


class GrpcClient:
    def __init__(self, target: str | Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = 4, *,
                 idempotent: bool = True, delivery_timeout_s: float = DEFAULT_DELIVERY_TIMEOUT_S,
                 credentials: Credentials | None = None, tls: ClientTls | None = None) -> None:
        """`tls`: TLS channels (its CA, and a client certificate for mTLS); None: plaintext channels."""
        self.targets = ServerList(target)
        self.credentials = credentials
        self._channel_credentials = tls.grpc_credentials() if tls is not None else None
        self._tokens = TokenHolder()
        self.timeout_s = timeout_s
        self.retries = retries  # for group calls, as the HTTP client's
        self.idempotent = idempotent
        self.producer = GrpcProducer(self, DeliveryPolicy(timeout_s=delivery_timeout_s))
        self._channels: dict[str, Any] = {}
        self._stubs: dict[str, Any] = {}
        self._rng = random.Random()
        self.memberships = Memberships(self._leave_now, (GoQueueError, grpc.RpcError))
        self.positions = ReadPositions()

    @property
    def target(self) -> str:
        """The target calls go to now."""
        return self.targets.current

    async def __aenter__(self) -> GrpcClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave every group this client is a member of, then close the channels."""
        if self._channels:
            await self.leave_groups()
        self.memberships.close()
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()

    def _stub_for(self, target: str) -> Any:
        """The stub of `target`, its channel opened on first use: grpc.aio binds it to the running event loop."""
        if target not in self._channels:
            interceptors = ([] if self.credentials is None
                            else bearer_token_interceptors(lambda: self._authorization(target)))
            if self._channel_credentials is not None:
                self._channels[target] = grpc.aio.secure_channel(target, self._channel_credentials,
                                                                 options=CHANNEL_OPTIONS, interceptors=interceptors)
            else:
                self._channels[target] = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS,
                                                                   interceptors=interceptors)
            self._stubs[target] = pb_grpc.GoQueueStub(self._channels[target])
        return self._stubs[target]

    @property
    def channel(self) -> Any:
        """The open `grpc.aio.Channel` to the current target, for calls the typed methods do not cover."""
        self._stub_for(self.target)
        return self._channels[self.target]

    @property
    def stub(self) -> Any:
        """The generated `GoQueueStub` of the current target."""
        return self._stub_for(self.target)

    def forget_token(self) -> None:
        """Drop the session token (the broker refused it): the next call authenticates again."""
        self._tokens.forget()

    async def _authorization(self, target: str) -> str:
        """The session token for a call to `target`: the current one, or a new one from a SCRAM exchange there."""
        assert self.credentials is not None, "the interceptor is installed with credentials only"
        loop = asyncio.get_running_loop()
        token = self._tokens.current(loop.time())
        if token is not None:
            return token
        stub = self._stub_for(target)
        exchange = self.credentials.exchange()
        try:
            started = await stub.ScramStart(pb.ScramStartRequest(client_first=exchange.client_first),
                                            timeout=self.timeout_s)
            finished = await stub.ScramFinish(pb.ScramFinishRequest(
                exchange_id=started.exchange_id, client_final=client_final(exchange, started.server_first)),
                timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, target) from exc
        verify_server(exchange, finished.server_final)
        # The token's lifetime, on this loop's clock (the broker's wall clock may differ from ours).
        lifetime_s = max(0.0, finished.expires_at_ms / 1000 - time.time())
        self._tokens.store(finished.token, loop.time() + lifetime_s, loop.time())
        return str(finished.token)

    async def _call(self, method: str, request: Any, timeout_s: float | None = None, retry: bool = False) -> Any:
        """One unary call, to the next target while one cannot be reached; with `retry`, sent again after a
        back-off while it fails with a retry code."""
        attempt = unreached = 0
        renewed = False
        while True:
            target = self.target
            try:
                return await getattr(self._stub_for(target), method)(request, timeout=timeout_s or self.timeout_s)
            except grpc.aio.AioRpcError as exc:
                error = error_from_rpc(exc, target)
                if isinstance(error, Unauthenticated) and self.credentials is not None and not renewed:
                    self.forget_token()  # a refused token: authenticate once more
                    renewed = True
                    continue
                if _transport_failure(exc):
                    self.targets.failed(target)
                    unreached += 1
                    if exc.code() == grpc.StatusCode.UNAVAILABLE and unreached < len(self.targets):
                        continue  # not connected: nothing was sent there
                if not retry or attempt >= self.retries or error.code not in RETRY_CODES:
                    raise error from exc
            await asyncio.sleep(backoff_s(attempt, RETRY_BACKOFF_S, RETRY_BACKOFF_MAX_S, self._rng))
            attempt += 1

    # -- health ------------------------------------------------------------------------------------------------

    async def health(self, service: str = "") -> str:
        """The standard health service's status name for `service` ("SERVING", "NOT_SERVING" …)."""
        health = health_pb2_grpc.HealthStub(self.channel)
        try:
            response = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.target) from exc
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    # -- topics ------------------------------------------------------------------------------------------------

    async def create_topic(self, spec: TopicCreate) -> TopicInfo:
        return convert.topic_from_proto(await self._call("CreateTopic", convert.topic_create_to_proto(spec)))

    async def list_topics(self) -> list[TopicInfo]:
        response = await self._call("ListTopics", pb.ListTopicsRequest())
        return [convert.topic_from_proto(topic) for topic in response.topics]

    async def describe_topic(self, name: str, details: bool = True) -> TopicInfo:
        """The topic; without `details` only its metadata (partition count, settings), at once from any broker."""
        request = pb.DescribeTopicRequest(name=name, details=details)
        return convert.topic_from_proto(await self._call("DescribeTopic", request))

    async def update_topic(self, name: str, update: TopicUpdate) -> TopicInfo:
        return convert.topic_from_proto(await self._call("UpdateTopic", convert.topic_update_to_proto(name, update)))

    async def delete_topic(self, name: str) -> None:
        await self._call("DeleteTopic", pb.DeleteTopicRequest(name=name))

    # -- produce -----------------------------------------------------------------------------------------------

    async def produce(
        self,
        topic: str,
        records: Sequence[RecordIn],
        *,
        partition: int | None = None,
        acks: Acks = Acks.ALL,
        producer: ProducerIdentity | None = None,
    ) -> ProduceResponse:
        """Write records; returns each one's (partition, offset) in call order. Idempotent and retried
        (`grpc_producer.py`) unless the client is made with `idempotent=False`, acks is 0, or `producer` stamps the
        call."""
        if not self.idempotent or acks is Acks.NONE or producer is not None:
            request = convert.produce_to_proto(topic, records, partition=partition, acks=acks, producer=producer)
            return convert.produce_response_from_proto(await self._call("Produce", request))
        return await self.producer.produce(topic, records, partition, acks)

    @property
    def produce_retries(self) -> int:
        """Produce requests sent again so far (through failovers), for reports."""
        return self.producer.retries

    async def produce_once(self, topic: str, records: Sequence[RecordIn], partition: int, acks: Acks,
                           producer: ProducerIdentity, timeout_s: float) -> ProduceResponse:
        """One stamped produce call to the current target, not retried; a target that cannot be reached or does
        not answer is left for the next attempt. The idempotent producer's transport."""
        request = convert.produce_to_proto(topic, records, partition=partition, acks=acks, producer=producer)
        target = self.target
        try:
            response = await self._stub_for(target).Produce(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            if _transport_failure(exc):
                self.targets.failed(target)
            raise error_from_rpc(exc, target) from exc
        return convert.produce_response_from_proto(response)

    async def produce_batch(self, topic: str, partition: int, batch: bytes, acks: Acks = Acks.ALL,
                            timeout_s: float | None = None) -> BatchOffsets:
        """Produce one record batch built with `goqueue.storage.batch.build_batch`."""
        response = await self._call("ProduceBatch", pb.ProduceBatchRequest(
            topic=topic, partition=partition, batch=batch, acks=convert.ACKS_TO_PROTO[acks]), timeout_s=timeout_s)
        return batch_offsets_from_proto(response)

    async def produce_batch_stream(self, topic: str, batches: AsyncIterable[tuple[int, bytes]], *,
                                   acks: Acks = Acks.ALL) -> AsyncGenerator[BatchOffsets, None]:
        """One ProduceBatch per `(partition, batch)` of `batches`, pipelined on one stream; yields each one's
        offsets in order, and raises the error of the first refused batch (the ones sent after it may have been
        written). Iterate it to the end, or close it (`contextlib.aclosing`) to cancel the stream."""
        proto_acks = convert.ACKS_TO_PROTO[acks]

        async def encoded() -> AsyncIterator[Any]:
            async for partition, batch in batches:
                yield pb.ProduceBatchRequest(topic=topic, partition=partition, batch=batch, acks=proto_acks)

        call = self.stub.ProduceBatchStream(encoded())
        try:
            async for response in call:
                if response.HasField("error"):
                    raise convert.request_error_from_proto(response.error)
                yield batch_offsets_from_proto(response)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.target) from exc
        finally:
            call.cancel()

    async def produce_stream(
        self,
        topic: str,
        requests: AsyncIterable[Sequence[RecordIn]],
        *,
        partition: int | None = None,
        acks: Acks = Acks.ALL,
    ) -> AsyncGenerator[ProduceResponse, None]:
        """One produce per item of `requests`, pipelined on one stream; yields each one's offsets in order.

        Iterate it to the end, or close it (`contextlib.aclosing`) to cancel the stream.
        """

        async def encoded() -> AsyncIterator[Any]:
            async for records in requests:
                yield convert.produce_to_proto(topic, records, partition=partition, acks=acks)

        call = self.stub.ProduceStream(encoded())
        try:
            async for response in call:
                yield convert.produce_response_from_proto(response)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.target) from exc
        finally:
            call.cancel()

    # -- fetch -------------------------------------------------------------------------------------------------

    async def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int | None = None,
        max_bytes: int | None = None,
        wait_ms: int = 0,
        raw_batches: bool = False,
    ) -> FetchedRecords:
        request = pb.FetchRequest(topic=topic, partition=partition, offset=offset, wait_ms=wait_ms,
                                  raw_batches=raw_batches, max_records=max_records, max_bytes=max_bytes)
        return _fetched(await self._call("Fetch", request, timeout_s=self.timeout_s + wait_ms / 1000))

    async def fetch_batches(self, topic: str, partition: int, offset: int, *, max_bytes: int | None = None,
                            wait_ms: int = 0) -> bytes:
        """Whole batches from `offset` (the first may start before it), for clients that decode themselves."""
        fetched = await self.fetch(topic, partition, offset, max_bytes=max_bytes, wait_ms=wait_ms, raw_batches=True)
        return fetched.batches

    async def fetch_stream(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int | None = None,
        max_bytes: int | None = None,
        raw_batches: bool = False,
    ) -> AsyncGenerator[FetchedRecords, None]:
        """Follow a partition from `offset`: one item per non-empty fetch, forever.

        Stop by closing the iterator (`async with contextlib.aclosing(client.fetch_stream(...)) as stream:`),
        which cancels the call.
        """
        call = self.stub.FetchStream(pb.FetchStreamRequest(
            topic=topic, partition=partition, offset=offset, raw_batches=raw_batches, max_records=max_records,
            max_bytes=max_bytes))
        try:
            async for response in call:
                yield _fetched(response)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.target) from exc
        finally:
            call.cancel()

    async def offsets(self, topic: str, partition: int, timestamp_ms: int | None = None) -> dict[str, int | None]:
        """earliest / latest (high watermark) / logEnd / forTimestamp, as the HTTP client returns them."""
        request = pb.GetOffsetsRequest(topic=topic, partition=partition, timestamp_ms=timestamp_ms)
        return convert.offsets_from_proto(await self._call("GetOffsets", request))


    # -- consumer groups ---------------------------------------------------------------------------------------

    async def join_group(self, group: str, topics: list[str], *, member_id: str | None = None,
                         client_id: str = "goqueue-client", host: str | None = None) -> JoinResponse:
        request = JoinRequest(member_id=member_id, client_id=client_id, host=host, topics=topics)
        response = await self._call("JoinGroup", convert_groups.join_to_proto(group, request), retry=True)
        joined = convert_groups.join_response_from_proto(response)
        self.memberships.add(group, joined.member_id)
        return joined

    async def heartbeat(self, group: str, member_id: str, generation: int) -> HeartbeatResponse:
        response = await self._call("Heartbeat", pb.HeartbeatRequest(
            group=group, member_id=member_id, generation=generation), retry=True)
        return convert_groups.heartbeat_response_from_proto(response)

    async def leave_group(self, group: str, member_id: str) -> None:
        try:
            await self._call("LeaveGroup", pb.LeaveGroupRequest(group=group, member_id=member_id), retry=True)
        finally:
            self.memberships.discard(group, member_id)
            self.positions.forget(group, member_id)

    async def leave_groups(self) -> None:
        """Leave every group this client joined or consumed from as a member (`close` does this); best-effort:
        one that cannot be left now expires after its session timeout."""
        for group, member_id in self.memberships.snapshot():
            try:
                await self.leave_group(group, member_id)
            except (UnknownMember, GroupNotFound):
                pass  # gone already: its session expired, it was removed, or it never came to be
            except GoQueueError as exc:  # not an error of the caller's: the member expires after its session
                log.info("group.leave_failed", extra={"group": group, "member": member_id, "error": exc.message})

    def _leave_now(self, group: str, member_id: str) -> None:
        """Leave from a hook (`membership.py`): a blocking call on a channel of its own, each target once."""
        for target in self.targets.servers:
            with (grpc.secure_channel(target, self._channel_credentials) if self._channel_credentials is not None
                  else grpc.insecure_channel(target)) as channel:
                try:
                    pb_grpc.GoQueueStub(channel).LeaveGroup(
                        pb.LeaveGroupRequest(group=group, member_id=member_id), timeout=LEAVE_TIMEOUT_S)
                except grpc.RpcError as exc:
                    if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        continue
                    if exc.code() == grpc.StatusCode.NOT_FOUND:
                        return  # gone already
                    raise
                return

    async def consume(self, group: str, request: ConsumeRequest) -> ConsumeResponse:
        """One long-poll of up to `request.wait_ms`. A shared consume makes this client a member of the group."""
        if request.consumer_id is not None:
            self.memberships.add(group, request.consumer_id)
        stamped = self.positions.stamp(group, request)  # ordered: a resend after a lost answer reads the same
        response = await self._call("Consume", convert_groups.consume_to_proto(group, stamped),
                                    timeout_s=self.timeout_s + request.wait_ms / 1000, retry=True)
        answer = convert_groups.consume_response_from_proto(response)
        self.positions.advance(group, stamped, answer)
        return answer

    def consume_stream(self, group: str, request: ConsumeRequest, *, prefetch: int = 100) -> ConsumeStream:
        """A flow-controlled stream of the group's records (use it with `async with`; see `consume_stream.py`)."""
        if request.consumer_id is not None:
            self.memberships.add(group, request.consumer_id)
        return ConsumeStream(self.stub, group, request, prefetch, lambda exc: error_from_rpc(exc, self.target),
                             self.positions)

    async def ack(self, group: str, lease_ids: list[str]) -> AckResponse:
        response = await self._call("Ack", pb.AckRequest(group=group, lease_ids=lease_ids), retry=True)
        return convert_groups.ack_response_from_proto(response)

    async def nack(self, group: str, lease_ids: list[str], delay_s: float = 0.0,
                   reason: str | None = None) -> AckResponse:
        response = await self._call("Nack", pb.NackRequest(group=group, lease_ids=lease_ids, delay_s=delay_s,
                                                           reason=reason), retry=True)
        return convert_groups.ack_response_from_proto(response)

    async def release(self, group: str, lease_ids: list[str]) -> AckResponse:
        response = await self._call("Release", pb.AckRequest(group=group, lease_ids=lease_ids), retry=True)
        return convert_groups.ack_response_from_proto(response)

    async def commit(self, group: str, offsets: list[OffsetCommit], *, member_id: str | None = None,
                     generation: int | None = None) -> CommitResponse:
        request = CommitRequest(member_id=member_id, generation=generation, offsets=offsets)
        response = await self._call("CommitOffsets", convert_groups.commit_to_proto(group, request), retry=True)
        return convert_groups.commit_response_from_proto(response)


def _fetched(response: Any) -> FetchedRecords:
    return FetchedRecords(
        topic=response.topic, partition=response.partition,
        records=[convert.fetched_record_from_proto(r) for r in response.records], batches=response.batches,
        next_offset=response.next_offset, high_watermark=response.high_watermark,
        log_start_offset=response.log_start_offset)
