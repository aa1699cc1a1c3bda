"""The batching producer over gRPC `ProduceBatch` (the fastest produce path): a `GrpcClient` underneath, which
moves to the next target when one cannot be reached and, with `credentials`, authenticates as it does."""

from __future__ import annotations

from collections.abc import Sequence

from goqueue.client.auth import Credentials
from goqueue.client.grpc_client import DEFAULT_TIMEOUT_S, GrpcClient
from goqueue.client.tls import ClientTls
from goqueue.models import Acks


class GrpcBatchTransport:
    def __init__(self, targets: str | Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 credentials: Credentials | None = None, tls: ClientTls | None = None) -> None:
        self.client = GrpcClient(targets, timeout_s=timeout_s, credentials=credentials, tls=tls)
        self.timeout_s = timeout_s

    async def partition_count(self, topic: str) -> int:
        return (await self.client.describe_topic(topic, details=False)).partitions

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        return (await self.client.produce_batch(topic, partition, batch, acks, timeout_s=timeout_s)).base_offset

    async def close(self) -> None:
        await self.client.close()
