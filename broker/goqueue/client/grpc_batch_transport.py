"""The batching producer over gRPC: its batches go on one `ProduceBatchStream` (`grpc_batch_stream.py`), pipelined,
through a `GrpcClient` underneath, which moves to the next target when one cannot be reached and, with
`credentials`, authenticates as it does. A failed stream is replaced by a new one at the next batch; a broker that
does not serve the stream (an older version, mid-upgrade) gets unary `ProduceBatch` calls from then on, the others
the stream."""

from __future__ import annotations

from collections.abc import Sequence

from goqueue.client.auth import Credentials
from goqueue.client.grpc_batch_stream import BatchStream, StreamUnsupported
from goqueue.client.grpc_client import DEFAULT_TIMEOUT_S, GrpcClient
from goqueue.client.tls import ClientTls
from goqueue.errors import Unauthenticated
from goqueue.models import Acks


class GrpcBatchTransport:
    def __init__(self, targets: str | Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 credentials: Credentials | None = None, tls: ClientTls | None = None, stream: bool = True) -> None:
        """`stream=False`: a unary ProduceBatch call per batch (what brokers before ProduceBatchStream serve)."""
        self.client = GrpcClient(targets, timeout_s=timeout_s, credentials=credentials, tls=tls)
        self.timeout_s = timeout_s
        self.streaming = stream
        self.unary_targets: set[str] = set()  # brokers that answered the stream UNIMPLEMENTED (older versions)
        self._stream: BatchStream | None = None

    async def partition_count(self, topic: str) -> int:
        return (await self.client.describe_topic(topic, details=False)).partitions

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        renewed = False
        while self.streaming and self.client.target not in self.unary_targets:
            try:
                return (await self._open_stream().send(topic, partition, batch, acks, timeout_s)).base_offset
            except StreamUnsupported:
                self.unary_targets.add(self.client.target)
            except Unauthenticated:
                if self.client.credentials is None or renewed:
                    raise
                self.client.forget_token()  # a refused token, as a unary call's: authenticate once more
                renewed = True
        return (await self.client.produce_batch(topic, partition, batch, acks, timeout_s=timeout_s)).base_offset

    def _open_stream(self) -> BatchStream:
        if self._stream is None or not self._stream.open:
            self._stream = BatchStream(self.client)
        return self._stream

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        await self.client.close()
