"""`ConsumeStream`: a consumer-group consume over gRPC's ConsumeStream, with credit-based flow control.

    async with client.consume_stream("workers", ConsumeRequest(consumer_id="c1", topic="jobs"), prefetch=100) as s:
        async for record in s:                       # a DeliveredRecord, as the HTTP client returns them
            await client.ack("workers", [record.lease_id])

The stream opens with `prefetch` records of credit. Each record the caller takes from the iterator gives one credit
back (sent in batches of half the prefetch), so the broker never holds more than `prefetch` delivered records that
the caller has not taken yet — it leases nothing beyond that, and those records stay available to the group's
other consumers. `paused` tells whether the group was paused at the broker's last word. Leaving the `async with`
cancels the call; leases of records already delivered stay with the group (ack, nack or release them, or they come
back after the visibility timeout).

An ordered member's stream (`member_id` set) keeps the client's read positions (`positions.py`) as the caller takes
records, not as they arrive: a stream that breaks, or is closed with records still buffered, is followed by a new
one that starts at the first record the caller did not take — never after it (the broker's own read position for
the member has already moved past everything it sent).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from goqueue.api.grpc import convert_groups
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.positions import ReadPositions
from goqueue.errors import GoQueueError, InvalidRequest
from goqueue.models import ConsumeRequest, ConsumeResponse, DeliveredRecord

Translate = Callable[[grpc.aio.AioRpcError], GoQueueError]


class ConsumeStream:
    def __init__(self, stub: Any, group: str, request: ConsumeRequest, prefetch: int, translate: Translate,
                 positions: ReadPositions | None = None) -> None:
        """`translate` turns a failed call into its `GoQueueError` (the client's `error_from_rpc`); `positions` are
        the client's ordered read positions (`GrpcClient.positions`)."""
        if prefetch < 1:
            raise InvalidRequest(f"prefetch must be >= 1, got {prefetch}")
        self._stub = stub
        self._translate = translate
        self.group = group
        self.request = request
        self.prefetch = prefetch
        self.paused = False
        self._positions = positions if request.member_id is not None else None
        self._call: Any = None
        # each record with the answer it came in when it is that answer's last (its positions apply once taken)
        self._buffer: deque[tuple[DeliveredRecord, ConsumeResponse | None]] = deque()
        self._taken = 0  # records taken since credit was last given back

    async def __aenter__(self) -> ConsumeStream:
        self._call = self._stub.ConsumeStream()
        if self._positions is not None:
            self.request = self._positions.stamp(self.group, self.request)
        subscription = convert_groups.consume_to_proto(self.group, self.request)
        await self._write(pb.ConsumeStreamRequest(subscription=subscription, credit=self.prefetch))
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    @property
    def buffered(self) -> int:
        """Records received and not yet taken by the caller."""
        return len(self._buffer)

    def __aiter__(self) -> ConsumeStream:
        return self

    async def __anext__(self) -> DeliveredRecord:
        while not self._buffer:
            response = await self._read()
            if response is None:
                raise StopAsyncIteration
            self.paused = response.paused
            answer = convert_groups.consume_response_from_proto(response)
            if not answer.records:
                self._took(answer)
            self._buffer.extend((record, answer if record is answer.records[-1] else None)
                                for record in answer.records)
        record, last_of = self._buffer.popleft()
        self._took(last_of, record)
        self._taken += 1
        if self._taken >= max(1, self.prefetch // 2):
            await self._write(pb.ConsumeStreamRequest(credit=self._taken))
            self._taken = 0
        return record

    def _took(self, answer: ConsumeResponse | None, record: DeliveredRecord | None = None) -> None:
        """Move the client's positions past what the caller took (a whole answer: to the positions it returned)."""
        if self._positions is None or self.request.member_id is None:
            return
        if record is not None:
            self._positions.took(self.group, self.request.member_id, self.request.generation, record.topic,
                                 record.partition, record.offset + 1)
        if answer is not None:
            self._positions.advance(self.group, self.request, answer)

    async def _read(self) -> Any:
        assert self._call is not None, "use the stream inside `async with`"
        try:
            response = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
        return None if response is grpc.aio.EOF else response

    async def _write(self, request: Any) -> None:
        assert self._call is not None, "use the stream inside `async with`"
        try:
            await self._call.write(request)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(exc) from exc
