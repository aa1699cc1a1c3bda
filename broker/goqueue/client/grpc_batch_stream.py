"""One open `ProduceBatchStream` call that many senders share (the batching producer's gRPC wire): `send` writes a
client-built batch on the stream and awaits its answer, so batches to several partitions are in flight at once
without a unary call each. A message on an open stream costs the broker about half of what a unary call does
(`docs/PERFORMANCE.md`, "ProduceBatchStream").

* **Opening**: the broker sends its initial metadata as soon as it takes the stream; nothing is written before
  that. A broker that does not know the rpc (a version before it, mid-upgrade) answers UNIMPLEMENTED instead, and
  `StreamUnsupported` tells the owner to use unary calls there. (Writing at once would race that answer: grpc
  then reports INTERNAL for the failed write instead of the broker's status.)
* **Answers** come in request order, matched to their senders with a FIFO. A refused batch is answered with its
  error and the stream goes on.
* **A broken stream** (the broker stopped or cannot be reached, a refused session token) fails the first
  unanswered batch with the stream's error when the broker named one, and every other unanswered batch with a
  retriable `Unavailable`: it may or may not have been written, which the idempotent producer's resend settles. A
  batch not answered within its timeout fails with `Timeout` and ends the stream (a late answer could no longer be
  matched). A broken stream stays broken; the owner opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import grpc

from goqueue.api.grpc import convert
from goqueue.api.grpc.errors import ERROR_CODE_KEY
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.client.grpc_client import BatchOffsets, GrpcClient, batch_offsets_from_proto, error_from_rpc
from goqueue.errors import GoQueueError, Timeout, Unavailable, error_for_code
from goqueue.models import Acks


class StreamUnsupported(Exception):
    """The broker does not serve ProduceBatchStream: use unary ProduceBatch there."""


class BatchStream:
    def __init__(self, client: GrpcClient) -> None:
        self.target = client.target
        self._client = client
        self._call = client.stub.ProduceBatchStream()  # no request iterator: written to with `write`
        self._waiting: deque[asyncio.Future[BatchOffsets]] = deque()
        self._writing = asyncio.Lock()  # the FIFO's order is the order of the writes
        self._serving = asyncio.Event()  # the broker took the stream (or it broke)
        self.failure: BaseException | None = None
        self._reader = asyncio.create_task(self._read(), name="grpc-batch-stream")

    @property
    def open(self) -> bool:
        return self.failure is None

    async def send(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> BatchOffsets:
        answer: asyncio.Future[BatchOffsets] = asyncio.get_running_loop().create_future()
        request = pb.ProduceBatchRequest(topic=topic, partition=partition, batch=batch,
                                         acks=convert.ACKS_TO_PROTO[acks])
        try:
            async with asyncio.timeout(timeout_s):
                await self._serving.wait()
                async with self._writing:
                    if self.failure is not None:
                        raise self._refused_before_sent()
                    self._waiting.append(answer)
                    with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError,
                                             asyncio.InvalidStateError):
                        await self._call.write(request)  # a broken stream fails `answer` from the reader
                return await asyncio.shield(answer)
        except TimeoutError:
            error = Timeout(f"{self.target} did not answer a produced batch within {timeout_s:g}s")
            self._fail(error)
            raise error from None

    async def close(self) -> None:
        self._fail(Unavailable(f"the produce stream to {self.target} was closed before this batch was answered"))
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    def _refused_before_sent(self) -> BaseException:
        if isinstance(self.failure, StreamUnsupported | GoQueueError) and not self._waiting:
            return self.failure  # the stream's own answer (unsupported, a refused token), nothing sent yet
        return Unavailable(f"the produce stream to {self.target} broke; this batch was not sent")

    async def _read(self) -> None:
        try:
            await self._call.initial_metadata()
            if not self._call.done():  # a refusal (unimplemented, unauthenticated) comes alone, the call done
                self._serving.set()
            while (response := await self._call.read()) is not grpc.aio.EOF:
                if not self._waiting:
                    continue
                answer = self._waiting.popleft()
                if answer.done():
                    continue
                if response.HasField("error"):
                    answer.set_exception(error_for_code(response.error.code)(response.error.message))
                else:
                    answer.set_result(batch_offsets_from_proto(response))
            self._fail(Unavailable(f"{self.target} ended the produce stream"))
        except grpc.aio.AioRpcError as exc:
            self._fail(self._stream_error(exc))
        except asyncio.CancelledError:
            self._fail(Unavailable(f"the produce stream to {self.target} was closed"))

    def _stream_error(self, exc: grpc.aio.AioRpcError) -> BaseException:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return StreamUnsupported(f"{self.target} does not serve ProduceBatchStream")
        if any(key == ERROR_CODE_KEY for key, _ in exc.trailing_metadata() or ()):
            return error_from_rpc(exc, self.target)  # the broker's reason (NOT_READY at shutdown, UNAUTHENTICATED)
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            self._client.targets.failed(self.target)
        if not self._serving.is_set():
            return Unavailable(f"cannot open a produce stream to {self.target}: {exc.details()}")  # nothing sent
        return _unanswered(self.target)  # lost connection, or INTERNAL from a write that raced the end

    def _fail(self, error: BaseException) -> None:
        """End the stream: the first unanswered batch gets `error`, the later ones may or may not have been written."""
        if self.failure is None:
            self.failure = error
        self._serving.set()
        self._call.cancel()
        first = True
        while self._waiting:
            answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error if first else _unanswered(self.target))
                answer.exception()  # retrieved: a sender that timed out no longer awaits it
            first = False


def _unanswered(target: str) -> GoQueueError:
    return Unavailable(f"the produce stream to {target} ended before this batch was answered; it may or may not "
                       "have been written (an idempotent producer's resend settles which)")
