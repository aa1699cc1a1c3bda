"""Records as the broker's operations take and return them, decoded from any wire format (HTTP JSON or binary,
gRPC) and independent of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

Header = tuple[str, bytes]


class RecordIn(NamedTuple):
    """A record to produce, decoded from any API (a NamedTuple: thousands are built per request)."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class ProducerIdentity:
    producer_id: int
    producer_epoch: int
    base_sequence: int


@dataclass(frozen=True)
class FetchResult:
    data: bytes
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
