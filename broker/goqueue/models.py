"""Request and response models shared by the HTTP API, the gRPC converters, the client, the CLIs and the operator.

JSON uses camelCase (`replicationFactor`), Python uses snake_case; both are accepted on input. Durations are
seconds and sizes bytes on output, and accept units on input (`"7d"`, `"10GB"`), like the broker config.

Record keys, values and header values are bytes on the wire. In JSON they are carried as text in one of two
encodings, chosen per request (`encoding`) and reported per fetched record: `utf8` (default) or `base64`.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from goqueue.config import Duration, Size

TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"
_TOPIC_NAME = re.compile(TOPIC_NAME_PATTERN)
MAX_PARTITIONS_PER_TOPIC = 1024


def topic_name_problem(name: str) -> str | None:
    """Why `name` is not a valid topic name, or None when it is."""
    if not _TOPIC_NAME.match(name):
        return "topic names are 1-249 characters of letters, digits, '.', '_' and '-'"
    if name in {".", ".."}:
        return "topic names cannot be '.' or '..'"
    if name.endswith(".deleted"):
        return "topic names cannot end in '.deleted' (reserved for deletion in progress)"
    return None


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", serialize_by_alias=True)


class CleanupPolicy(StrEnum):
    DELETE = "delete"    # retention deletes whole segments by age and size
    COMPACT = "compact"  # keep the newest record per key; tombstones expire


class Acks(StrEnum):
    ALL = "all"   # every in-sync replica has the record (and, single-node, it is fsynced per storage.fsync)
    ONE = "1"     # the leader wrote it
    NONE = "0"    # fire and forget: the request returns before the write


class Encoding(StrEnum):
    UTF8 = "utf8"
    BASE64 = "base64"


class TopicConfig(_Model):
    """Per-topic settings; None means "the broker default" (`retention.*`, `limits.*`)."""

    cleanup_policy: CleanupPolicy = Field(CleanupPolicy.DELETE, alias="cleanupPolicy")
    retention_max_age_s: Duration | None = Field(None, alias="retentionMaxAge")
    retention_max_bytes: Size | None = Field(None, alias="retentionMaxSize")
    max_message_bytes: Size | None = Field(None, alias="maxMessageBytes", ge=1)
    min_insync_replicas: int | None = Field(None, alias="minInsyncReplicas", ge=1)
    tombstone_retention_s: Duration | None = Field(None, alias="tombstoneRetention")
    segment_bytes: Size | None = Field(None, alias="segmentBytes", ge=4096)
    unclean_leader_election: bool = Field(False, alias="uncleanLeaderElection")


class TopicCreate(_Model):
    name: str
    partitions: int = Field(1, ge=1, le=MAX_PARTITIONS_PER_TOPIC)
    replication_factor: int = Field(1, alias="replicationFactor", ge=1, le=16)
    config: TopicConfig = TopicConfig()


class TopicUpdate(_Model):
    """Grow partitions and/or change settings; omitted fields stay as they are."""

    partitions: int | None = Field(None, ge=1, le=MAX_PARTITIONS_PER_TOPIC)
    config: dict[str, Any] | None = None


class PartitionInfo(_Model):
    partition: int
    start_offset: int = Field(alias="startOffset")
    end_offset: int = Field(alias="endOffset")
    high_watermark: int = Field(alias="highWatermark")
    size_bytes: int = Field(alias="sizeBytes")
    segments: int
    leader: int | None = None
    replicas: list[int] = []
    isr: list[int] = []
    online: bool = True
    problem: str | None = None


class TopicInfo(_Model):
    name: str
    partitions: int
    replication_factor: int = Field(alias="replicationFactor")
    config: TopicConfig
    size_bytes: int = Field(0, alias="sizeBytes")
    messages: int = 0
    partition_details: list[PartitionInfo] = Field(default_factory=list, alias="partitionDetails")


class ProduceRecord(_Model):
    key: str | None = None
    value: str | None = None
    headers: dict[str, str] = {}
    partition: int | None = Field(None, ge=0)
    timestamp_ms: int | None = Field(None, alias="timestampMs", ge=0)


class ProduceRequest(_Model):
    records: list[ProduceRecord] = Field(min_length=1)
    encoding: Encoding = Encoding.UTF8
    acks: Acks = Acks.ALL
    partition: int | None = Field(None, ge=0, description="Send every record to this partition.")
    producer_id: int | None = Field(None, alias="producerId", ge=0, description="Idempotent producer id.")
    producer_epoch: int = Field(0, alias="producerEpoch", ge=0)
    base_sequence: int | None = Field(None, alias="baseSequence", ge=0)

    @field_validator("records")
    @classmethod
    def _bounded(cls, records: list[ProduceRecord]) -> list[ProduceRecord]:
        if len(records) > 100_000:
            raise ValueError("at most 100000 records per request")
        return records


class RecordOffset(_Model):
    partition: int
    offset: int


class ProduceResponse(_Model):
    topic: str
    offsets: list[RecordOffset]
    duplicate: bool = False


class FetchedRecord(_Model):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int = Field(alias="timestampMs")
    key: str | None
    value: str | None
    headers: dict[str, str] = {}
    encoding: Encoding = Encoding.UTF8


class FetchResponse(_Model):
    topic: str
    partition: int
    records: list[FetchedRecord]
    next_offset: int = Field(alias="nextOffset")
    high_watermark: int = Field(alias="highWatermark")
    log_start_offset: int = Field(alias="logStartOffset")


class HealthStatus(_Model):
    status: str
    broker_id: int = Field(alias="brokerId")
    version: str
    uptime_s: float = Field(alias="uptimeSeconds")
    checks: dict[str, str] = {}


class PartitionStorage(_Model):
    topic: str
    partition: int
    size_bytes: int = Field(alias="sizeBytes")
    segments: int
    start_offset: int = Field(alias="startOffset")
    end_offset: int = Field(alias="endOffset")


class StorageStats(_Model):
    data_dir: str = Field(alias="dataDir")
    volume_total_bytes: int = Field(alias="volumeTotalBytes")
    volume_used_bytes: int = Field(alias="volumeUsedBytes")
    volume_free_bytes: int = Field(alias="volumeFreeBytes")
    volume_used_percent: float = Field(alias="volumeUsedPercent")
    log_bytes: int = Field(alias="logBytes")
    topics: dict[str, int] = Field(default_factory=dict, description="bytes per topic")
    partitions: list[PartitionStorage] = []


def encode_bytes(data: bytes | None, encoding: Encoding) -> str | None:
    if data is None:
        return None
    if encoding is Encoding.BASE64:
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8")


def decode_text(text: str | None, encoding: Encoding, what: str) -> bytes | None:
    """JSON text → bytes; raises ValueError naming the field when base64 is malformed."""
    if text is None:
        return None
    if encoding is Encoding.BASE64:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{what} is not valid base64") from exc
    return text.encode("utf-8")


def choose_encoding(*parts: bytes | None) -> Encoding:
    """utf8 when every part decodes as UTF-8, else base64 (what `goqueue-cli consume -o json` shows)."""
    try:
        for part in parts:
            if part is not None:
                part.decode("utf-8")
    except UnicodeDecodeError:
        return Encoding.BASE64
    return Encoding.UTF8
