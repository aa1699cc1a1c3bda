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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from goqueue.api.grpc import convert_groups
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.errors import GoQueueError, InvalidRequest
from goqueue.models import ConsumeRequest, DeliveredRecord

Translate = Callable[[grpc.aio.AioRpcError], GoQueueError]


class ConsumeStream:
    def __init__(self, stub: Any, group: str, request: ConsumeRequest, prefetch: int, translate: Translate) -> None:
        """`translate` turns a failed call into its `GoQueueError` (the client's `error_from_rpc`)."""
        if prefetch < 1:
            raise InvalidRequest(f"prefetch must be >= 1, got {prefetch}")
        self._stub = stub
        self._translate = translate
        self.group = group
        self.request = request
        self.prefetch = prefetch
        self.paused = False
        self._call: Any = None
        self._buffer: deque[DeliveredRecord] = deque()
        self._taken = 0  # records taken since credit was last given back

    async def __aenter__(self) -> ConsumeStream:
        self._call = self._stub.ConsumeStream()
        subscription = convert_groups.consume_to_proto(self.group, self.request)
        await self._write(pb.ConsumeStreamRequest(subscription=subscription, credit=self.prefetch))
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def __aiter__(self) -> ConsumeStream:
        return self

    async def __anext__(self) -> DeliveredRecord:
        while not self._buffer:
            response = await self._read()
            if response is None:
                raise StopAsyncIteration
            self.paused = response.paused
            self._buffer.extend(convert_groups.delivered_from_proto(r) for r in response.records)
        record = self._buffer.popleft()
        self._taken += 1
        if self._taken >= max(1, self.prefetch // 2):
            await self._write(pb.ConsumeStreamRequest(credit=self._taken))
            self._taken = 0
        return record

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
