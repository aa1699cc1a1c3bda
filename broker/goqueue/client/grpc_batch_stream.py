"""One open `ProduceBatchStream` call that many senders share (the batching producer's gRPC wire): `send` writes a
client-built batch on the stream and awaits its answer, so batches to several partitions are in flight at once
without a unary call each. A message on an open stream costs the broker about half of what a unary call does
(`docs/PERFORMANCE.md`, "ProduceBatchStream").

* **Opening**: the broker sends its initial metadata as soon as it takes the stream; nothing is written before
  that. A broker that does not know the rpc (a version before it, mid-upgrade) answers UNIMPLEMENTED instead, and
  `StreamUnsupported` tells the owner to use unary calls there. (Writing at once would race that answer: grpc
  then reports INTERNAL for the failed write instead of the broker's status.) A stream that cannot be opened (the
  broker unreachable, the session token refused or not obtainable) fails its senders with that error; nothing was
  sent. The initial metadata also carries the broker's `limits.maxRequestBytes`: a larger batch is refused here
  with the broker's own `RecordTooLarge` and never written, since grpc refuses a message far enough over it by
  ending the whole stream, with no code that says which batch was at fault.
* **Answers** come in request order, matched to their senders with a FIFO of (topic, partition, future); an answer
  for another partition than the FIFO expects ends the stream rather than be given to the wrong sender. A refused
  batch is answered with its error and the stream goes on.
* **A sender that stops waiting** (its timeout, or it was cancelled) leaves its place in the FIFO, so the late
  answer is still matched and dropped. A write that did not finish (cancelled half way) ends the stream, as its
  place in the FIFO may have no request on the wire. When no answer at all came since a timed-out batch was
  written, the stream is taken for stuck and ended.
* **A broken stream** fails the first unanswered batch with the broker's reason when the broker gave one (it ends
  a stream only at shutdown or for a malformed message), and every other unanswered batch with a retriable
  `Unavailable`: it may or may not have been written, which the idempotent producer's resend settles. A broken
  stream stays broken; the owner opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import grpc

from goqueue.api.grpc import convert
from goqueue.api.grpc.errors import ERROR_CODE_KEY
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.stream_metadata import max_request_bytes
from goqueue.client.grpc_client import BatchOffsets, GrpcClient, batch_offsets_from_proto, error_from_rpc
from goqueue.errors import GoQueueError, RecordTooLarge, Timeout, Unavailable
from goqueue.models import Acks


class StreamUnsupported(Exception):
    """The broker does not serve ProduceBatchStream: use unary ProduceBatch there."""


_Waiting = tuple[str, int, asyncio.Future[BatchOffsets]]


class BatchStream:
    def __init__(self, client: GrpcClient) -> None:
        self.target = client.target
        self._client = client
        self._call = client.stub.ProduceBatchStream()  # no request iterator: written to with `write`
        self._waiting: deque[_Waiting] = deque()
        self._writing = asyncio.Lock()  # the FIFO's order is the order of the writes
        self._serving = asyncio.Event()  # the broker took the stream (or it broke)
        self._answers = 0  # answers read so far: a timed-out batch with none since it was written means stuck
        self._opened = False  # the broker took the stream (its initial metadata came)
        self._max_request_bytes: int | None = None  # from the initial metadata; None from a broker that sends none
        self.failure: BaseException | None = None
        self._reader = asyncio.create_task(self._read(), name="grpc-batch-stream")

    @property
    def open(self) -> bool:
        return self.failure is None

    async def send(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> BatchOffsets:
        answer: asyncio.Future[BatchOffsets] = asyncio.get_running_loop().create_future()
        request = pb.ProduceBatchRequest(topic=topic, partition=partition, batch=batch,
                                         acks=convert.ACKS_TO_PROTO[acks])
        answers_when_written = -1
        try:
            async with asyncio.timeout(timeout_s):
                await self._serving.wait()
                if self._max_request_bytes is not None and len(batch) > self._max_request_bytes:
                    raise RecordTooLarge(f"batch is {len(batch)} bytes; limits.maxRequestBytes of {self.target} is "
                                         f"{self._max_request_bytes} (refused before sending)")
                async with self._writing:
                    if self.failure is not None:
                        raise self._unsent_error()
                    self._waiting.append((topic, partition, answer))
                    await self._write(request)
                    answers_when_written = self._answers
                return await asyncio.shield(answer)
        except TimeoutError:
            if answers_when_written == self._answers:  # nothing answered since this batch went out: stuck
                self._fail(Timeout(f"{self.target} answered nothing on the produce stream for {timeout_s:g}s"))
            raise Timeout(f"{self.target} did not answer a produced batch within {timeout_s:g}s") from None
        finally:
            answer.cancel()  # no-op once answered; else its late answer is matched and dropped

    async def _write(self, request: pb.ProduceBatchRequest) -> None:
        """Write one request; a write that does not finish (cancelled, or the call broke) ends the stream."""
        try:
            await self._call.write(request)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass  # the call broke: the reader fails every waiting batch, this one included
        except BaseException:
            self._fail(Unavailable(f"a write to the produce stream to {self.target} was interrupted"))
            raise

    async def close(self) -> None:
        self._fail(Unavailable(f"the produce stream to {self.target} was closed before this batch was answered"))
        with contextlib.suppress(BaseException):
            await self._reader

    def _unsent_error(self) -> BaseException:
        if not self._opened and self.failure is not None:  # the stream never opened: its reason is every sender's
            return self.failure
        return Unavailable(f"the produce stream to {self.target} broke; this batch was not sent")

    async def _read(self) -> None:
        try:
            metadata = await self._call.initial_metadata()
            if not self._call.done():  # a refusal (unimplemented, unauthenticated) comes alone, the call done
                self._max_request_bytes = max_request_bytes(metadata)
                self._opened = True
                self._serving.set()
            while (response := await self._call.read()) is not grpc.aio.EOF:
                self._answers += 1
                self._answer(response)
            self._fail(Unavailable(f"{self.target} ended the produce stream"))
        except grpc.aio.AioRpcError as exc:
            self._fail(self._stream_error(exc))
        except asyncio.CancelledError:
            self._fail(Unavailable(f"the produce stream to {self.target} was closed"))
        except GoQueueError as exc:  # raised by the token interceptor: no session for this broker
            if isinstance(exc, Unavailable):
                self._client.targets.failed(self.target)
            self._fail(exc)
        except Exception as exc:  # never a dead reader with senders waiting for it
            self._fail(Unavailable(f"the produce stream to {self.target} failed: {exc!r}"))

    def _answer(self, response: pb.ProduceBatchResponse) -> None:
        if not self._waiting:
            self._fail(Unavailable(f"{self.target} answered a batch that was not sent"))
            return
        topic, partition, answer = self._waiting[0]
        if (response.topic, response.partition) != (topic, partition):
            self._fail(Unavailable(f"{self.target} answered {response.topic}/{response.partition} where "
                                   f"{topic}/{partition} was next"))
            return
        self._waiting.popleft()
        if answer.done():
            return  # its sender stopped waiting
        if response.HasField("error"):
            answer.set_exception(convert.request_error_from_proto(response.error))
        else:
            answer.set_result(batch_offsets_from_proto(response))

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
            _, _, answer = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(error if first else _unanswered(self.target))
                answer.exception()  # retrieved: its sender may have stopped waiting meanwhile
            first = False


def _unanswered(target: str) -> GoQueueError:
    return Unavailable(f"the produce stream to {target} ended before this batch was answered; it may or may not "
                       "have been written (an idempotent producer's resend settles which)")
