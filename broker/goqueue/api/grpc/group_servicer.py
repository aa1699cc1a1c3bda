"""The consumer-group rpcs of `service GoQueue`: each converts its request (`convert_groups`), calls `GroupRouter`
(which serves it here or forwards it to the group's coordinator), and converts the answer.

Brokers forward group operations to each other over HTTP only, so every rpc is a client's own request: each passes
`forwarded=False` (the router may forward it once to the group's coordinator).

ConsumeStream is the only logic: credit-based flow control. The client grants credit (records it is ready for) in
its first request and in any later one; the servicer long-polls the group only while credit remains, for at most
that many records, in slices of `CONSUME_STREAM_POLL_S` so it notices shutdown, half-close and new credit. Records
it does not ask for are never leased, so a slow stream holds back nothing the group's other consumers could take.
Outstanding credit is bounded by `MAX_STREAM_CREDIT`. A consume with no records is sent only when the paused state
changes, so a paused group shows as paused instead of as silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from goqueue import limits
from goqueue.api.gatekeeper import Access, Gatekeeper
from goqueue.api.grpc import convert_groups as convert
from goqueue.api.grpc.auth import caller
from goqueue.api.grpc.convert import in_range
from goqueue.api.grpc.errors import translate_errors
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.consumers.router import GroupRouter
from goqueue.errors import InvalidRequest, NotReady
from goqueue.metrics import BrokerMetrics
from goqueue.models import ConsumeRequest, ReadPosition
from goqueue.security.acls import Operation, group, topic

CONSUME_STREAM_POLL_S = 0.5  # one long-poll slice of ConsumeStream: bounds how late it notices shutdown
MAX_STREAM_CREDIT = 100_000  # records of credit a stream may hold outstanding (as a produce request's record cap)

Context: TypeAlias = grpc.aio.ServicerContext


def peer_host(context: Context) -> str:
    """The client's address from grpc's peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000")."""
    peer = str(context.peer() or "")
    _, _, address = peer.partition(":")
    host = address.rsplit(":", 1)[0] if ":" in address else address
    return host.strip("[]") or "unknown"


class Credit:
    """Records a ConsumeStream client is ready for; `closed` once the client half-closed (no more will come)."""

    def __init__(self, initial: int) -> None:
        self.available = initial
        self.closed = False
        self._granted = asyncio.Event()

    def grant(self, records: int) -> None:
        self.available += records
        self._granted.set()

    def close(self) -> None:
        self.closed = True
        self._granted.set()

    def take(self, records: int) -> None:
        assert records <= self.available, "a stream never sends more records than it was granted"
        self.available -= records

    async def wait(self, timeout_s: float) -> None:
        """Until credit is granted, the client half-closes, or the timeout."""
        self._granted.clear()
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: see replication/raft.py
                await self._granted.wait()
        except TimeoutError:
            return


def carried(held: list[ReadPosition], read: list[ReadPosition]) -> list[ReadPosition]:
    """`held` positions moved on by the ones an answer returned."""
    merged = {(p.topic, p.partition): p for p in held} | {(p.topic, p.partition): p for p in read}
    return [merged[key] for key in sorted(merged)]


class GroupRpcs:
    """Mixed into `GoQueueServicer`, which provides the router, the metrics and the shutdown signal."""

    groups: GroupRouter | None
    gatekeeper: Gatekeeper
    metrics: BrokerMetrics
    _closing: asyncio.Event
    _readers: set[asyncio.Task[None]]

    def _router(self) -> GroupRouter:
        if self.groups is None:
            raise NotReady("this server runs without consumer groups")
        return self.groups

    def _caller(self, context: Context) -> Access:
        return caller(self.gatekeeper, context)

    def _member(self, context: Context, name: str) -> None:
        """The caller may consume as a member of group `name` (membership, acks, commits)."""
        self._caller(context).check(group(name), Operation.CONSUME)

    def _consumer(self, context: Context, name: str, request: ConsumeRequest) -> None:
        access = self._caller(context)
        access.check(group(name), Operation.CONSUME)
        if request.topic is not None:  # an ordered member's topics were checked when it joined
            access.check(topic(request.topic), Operation.CONSUME)

    @translate_errors
    async def JoinGroup(self, request: Any, context: Context) -> Any:  # noqa: N802 - rpc names are the proto's
        name, join = convert.join_from_proto(request)
        access = self._caller(context)
        access.check(group(name), Operation.CONSUME)
        for subscribed in join.topics:
            access.check(topic(subscribed), Operation.CONSUME)
        response = await self._router().join(name, join, peer_host(context), forwarded=False)
        return convert.join_response_to_proto(response)

    @translate_errors
    async def Heartbeat(self, request: Any, context: Context) -> Any:  # noqa: N802
        name = convert.group_name(request)
        self._member(context, name)
        in_range(request.generation, limits.GENERATION, "generation")
        response = await self._router().heartbeat(name, request.member_id, request.generation, forwarded=False)
        return convert.heartbeat_response_to_proto(response)

    @translate_errors
    async def LeaveGroup(self, request: Any, context: Context) -> Any:  # noqa: N802
        name = convert.group_name(request)
        self._member(context, name)
        await self._router().leave(name, request.member_id, forwarded=False)
        return pb.LeaveGroupResponse()

    @translate_errors
    async def Consume(self, request: Any, context: Context) -> Any:  # noqa: N802
        name, consume = convert.consume_from_proto(request)
        self._consumer(context, name, consume)
        response = await self._router().consume(name, consume, peer_host(context), forwarded=False)
        return convert.consume_response_to_proto(response)

    @translate_errors
    async def ConsumeStream(self, requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:  # noqa: N802
        router = self._router()
        first = await anext(requests, None)
        if first is None:
            return  # the client half-closed without subscribing
        subscription = convert.subscription_from_proto(first, MAX_STREAM_CREDIT)
        self._consumer(context, subscription.group, subscription.request)
        credit = Credit(subscription.credit)
        reader = asyncio.create_task(self._read_credit(requests, credit), name="grpc-consume-credit")
        self._readers.add(reader)
        host = peer_host(context)
        paused: bool | None = None
        request = subscription.request
        try:
            while not self._closing.is_set():
                if reader.done() and not reader.cancelled():
                    reader.result()  # a malformed request or an over-limit grant ends the stream with its error
                if credit.available <= 0:
                    if credit.closed:
                        return  # half-closed and every granted record sent
                    await credit.wait(CONSUME_STREAM_POLL_S)
                    continue
                response = await router.consume(subscription.group, request.model_copy(update={
                    "max_records": credit.available, "wait_ms": int(CONSUME_STREAM_POLL_S * 1000)}), host,
                    forwarded=False)
                if request.positions is not None and response.positions:
                    # Client-held positions (an ordered member): the stream carries them on itself, or every read
                    # would start again where the subscription said.
                    request = request.model_copy(update={"positions": carried(request.positions, response.positions)})
                if response.records:
                    credit.take(len(response.records))
                elif response.paused == paused:
                    continue
                paused = response.paused
                yield convert.consume_response_to_proto(response)
            raise NotReady("the broker is shutting down; reconnect (unacked leases stay with the group)")
        finally:
            self._readers.discard(reader)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read_credit(self, requests: AsyncIterator[Any], credit: Credit) -> None:
        async for request in requests:
            if request.HasField("subscription"):
                raise InvalidRequest("only the first ConsumeStreamRequest carries a subscription")
            credit.grant(convert.stream_credit(request, MAX_STREAM_CREDIT, credit.available))
        credit.close()

    @translate_errors
    async def Ack(self, request: Any, context: Context) -> Any:  # noqa: N802
        name, ack = convert.ack_from_proto(request)
        self._member(context, name)
        return convert.ack_response_to_proto(await self._router().ack(name, ack, forwarded=False))

    @translate_errors
    async def Nack(self, request: Any, context: Context) -> Any:  # noqa: N802
        name, nack = convert.nack_from_proto(request)
        self._member(context, name)
        return convert.ack_response_to_proto(await self._router().nack(name, nack, forwarded=False))

    @translate_errors
    async def Release(self, request: Any, context: Context) -> Any:  # noqa: N802
        name, release = convert.ack_from_proto(request)
        self._member(context, name)
        return convert.ack_response_to_proto(await self._router().release(name, release, forwarded=False))

    @translate_errors
    async def CommitOffsets(self, request: Any, context: Context) -> Any:  # noqa: N802
        name, commit = convert.commit_from_proto(request)
        self._member(context, name)
        return convert.commit_response_to_proto(await self._router().commit(name, commit, forwarded=False))
