"""Request and response models shared by the HTTP API, the gRPC converters, the client, the CLIs and the operator.

JSON uses camelCase (`replicationFactor`), Python uses snake_case; both are accepted on input. Durations are
seconds and sizes bytes on output, and accept units on input (`"7d"`, `"10GB"`), like the broker config.

Record keys, values and header values are bytes on the wire. In JSON they are carried as text in one of two
encodings, chosen per request (`encoding`) and reported per fetched record: `utf8` (default) or `base64`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, TypedDict, TypeVar

from annotated_types import Ge, Le
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from goqueue import limits
from goqueue.config import Assignor, Duration, OffsetReset, Size
from goqueue.limits import MAX_IDS_PER_REQUEST, MAX_PARTITIONS_PER_TOPIC, Range

__all__ = ["MAX_IDS_PER_REQUEST", "MAX_PARTITIONS_PER_TOPIC"]  # re-exported: older imports name them here

# Bounded so every on-disk name built from a topic fits the file system (see goqueue.limits).
TOPIC_NAME_PATTERN = rf"^[a-zA-Z0-9._-]{{1,{limits.TOPIC_NAME_MAX_LENGTH}}}$"
_TOPIC_NAME = re.compile(TOPIC_NAME_PATTERN)


def topic_name_problem(name: str) -> str | None:
    """Why `name` is not a valid topic name, or None when it is."""
    if not _TOPIC_NAME.match(name):
        return (f"topic names are 1-{limits.TOPIC_NAME_MAX_LENGTH} characters of letters, digits, '.', '_' and "
                "'-'")
    if name in {".", ".."}:
        return "topic names cannot be '.' or '..'"
    if name.endswith(".deleted"):
        return "topic names cannot end in '.deleted' (reserved for deletion in progress)"
    return None


# Requests are strict: an unknown field is refused, so a typo never passes silently. Answers are read with
# `context=ANSWER`, which ignores fields this version does not know: during a rolling upgrade a newer broker
# answers older clients, CLIs, peers and the operator.
ANSWER: dict[str, bool] = {"answer": True}


class Bounds(TypedDict):
    ge: float
    le: float


def within(bounds: Range) -> Bounds:
    """The pydantic constraints of a `goqueue.limits.Range` (`Field(..., **within(limits.PARTITION))`)."""
    return {"ge": bounds.minimum, "le": bounds.maximum}


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", serialize_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _ignore_unknown_fields_of_answers(cls, data: Any, info: ValidationInfo) -> Any:
        if not (isinstance(data, dict) and isinstance(info.context, dict) and info.context.get("answer")):
            return data
        known = cls._known_keys()
        return {k: v for k, v in data.items() if k in known}

    @classmethod
    def _known_keys(cls) -> frozenset[str]:
        return frozenset(name for field, info in cls.model_fields.items() for name in (field, info.alias) if name)


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class StoredValueFixed:
    """A stored setting that is invalid under this version's ranges, and the value it was loaded as."""

    field: str
    stored: Any
    loaded: Any


def load_stored(model: type[M], data: dict[str, Any]) -> tuple[M, list[StoredValueFixed]]:
    """A settings model read from the metadata or the state topic, where an older version may have stored a value
    this one refuses (before ranges were enforced): such a number is clamped into its range, anything else
    invalid falls back to the field's default, and each fix is returned so the caller logs it once. Refusing the
    whole record instead would make the topic or group unusable; keeping it as stored would fail every request
    that uses it. Unknown fields are ignored, as in answers (a newer version wrote them)."""
    fixed: list[StoredValueFixed] = []
    data = dict(data)
    for _ in range(len(model.model_fields) + 1):  # each round fixes at least one field
        try:
            return model.model_validate(data, context=ANSWER), fixed
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else ""
                info = _field_named(model, key)
                if info is None or key not in data:
                    raise
                stored = data[key]
                loaded = _clamped(stored, info)
                data[key] = loaded
                fixed.append(StoredValueFixed(key, stored, loaded))
    raise AssertionError("load_stored: every invalid field was replaced, yet validation still fails")


def _field_named(model: type[BaseModel], key: str) -> FieldInfo | None:
    return next((info for name, info in model.model_fields.items() if key in (name, info.alias)), None)


def _clamped(stored: Any, info: FieldInfo) -> Any:
    lower: Any = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    upper: Any = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    if isinstance(stored, int | float) and not isinstance(stored, bool) and not math.isnan(stored) and \
            (lower is not None or upper is not None):
        value = max(stored, lower) if lower is not None else stored
        return min(value, upper) if upper is not None else value
    return info.default


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
    retention_max_age_s: Duration | None = Field(None, alias="retentionMaxAge", **within(limits.RETENTION_MAX_AGE_S))
    retention_max_bytes: Size | None = Field(None, alias="retentionMaxSize", **within(limits.RETENTION_MAX_BYTES))
    max_message_bytes: Size | None = Field(None, alias="maxMessageBytes", **within(limits.MAX_MESSAGE_BYTES))
    min_insync_replicas: int | None = Field(None, alias="minInsyncReplicas", **within(limits.MIN_INSYNC_REPLICAS))
    tombstone_retention_s: Duration | None = Field(
        None, alias="tombstoneRetention", **within(limits.TOMBSTONE_RETENTION_S))
    segment_bytes: Size | None = Field(None, alias="segmentBytes", **within(limits.SEGMENT_BYTES))
    unclean_leader_election: StrictBool = Field(False, alias="uncleanLeaderElection")


class TopicCreate(_Model):
    name: str
    partitions: int = Field(1, **within(limits.PARTITIONS))
    replication_factor: int = Field(1, alias="replicationFactor", **within(limits.REPLICATION_FACTOR))
    config: TopicConfig = TopicConfig()


class TopicUpdate(_Model):
    """Grow partitions and/or change settings; omitted fields stay as they are."""

    partitions: int | None = Field(None, **within(limits.PARTITIONS))
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


class SettingSource(StrEnum):
    """Where a topic setting's effective value comes from (Kafka's config sources)."""

    TOPIC = "topic"            # set on this topic
    BROKER = "broker"          # the broker's own setting (config file or environment), e.g. retention.maxAge
    DEFAULT = "default"        # the built-in default (of the broker setting, when there is one)


class TopicSetting(_Model):
    """One topic setting as it applies: its value in the units the config is written in, and where it comes from."""

    key: str = Field(description="The TopicConfig key, e.g. retentionMaxAge.")
    value: str = Field(description="Effective value in config units: 168h, 10GB, delete.")
    source: str = Field(description="A SettingSource (a string, so a source a newer broker adds still parses).")
    broker_key: str | None = Field(None, alias="brokerKey", description="The broker setting the topic falls back "
                                   "to, e.g. retention.maxAge.")
    note: str | None = Field(None, description="Why the value differs from its source's, when it does.")


class TopicInfo(_Model):
    name: str
    partitions: int
    replication_factor: int = Field(alias="replicationFactor")
    config: TopicConfig = Field(description="The topic's own settings; None means the broker's applies.")
    settings: list[TopicSetting] = Field(default_factory=list, description="Every setting's effective value and "
                                         "source, in config order (empty from older brokers).")
    size_bytes: int = Field(0, alias="sizeBytes")
    messages: int = 0
    partition_details: list[PartitionInfo] = Field(default_factory=list, alias="partitionDetails")


class ProduceRecord(_Model):
    key: str | None = None
    value: str | None = None
    headers: dict[str, str] = {}
    partition: int | None = Field(None, **within(limits.PARTITION))
    timestamp_ms: int | None = Field(None, alias="timestampMs", **within(limits.TIMESTAMP_MS))


class ProduceRequest(_Model):
    records: list[ProduceRecord] = Field(min_length=1)
    encoding: Encoding = Encoding.UTF8
    acks: Acks = Acks.ALL
    partition: int | None = Field(None, description="Send every record to this partition.",
                                  **within(limits.PARTITION))
    producer_id: int | None = Field(None, alias="producerId", description="Idempotent producer id.",
                                    **within(limits.PRODUCER_ID))
    producer_epoch: int = Field(0, alias="producerEpoch", **within(limits.PRODUCER_EPOCH))
    base_sequence: int | None = Field(None, alias="baseSequence", **within(limits.BASE_SEQUENCE))

    @field_validator("records")
    @classmethod
    def _bounded(cls, records: list[ProduceRecord]) -> list[ProduceRecord]:
        if len(records) > limits.MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"at most {limits.MAX_RECORDS_PER_REQUEST} records per request")
        return records

    @model_validator(mode="after")
    def _sequences_fit(self) -> ProduceRequest:
        # the batch header stores the first sequence; the last one must fit the same int32
        if self.base_sequence is not None and self.base_sequence + len(self.records) - 1 > limits.INT32_MAX:
            raise ValueError(f"baseSequence plus the record count exceeds {limits.INT32_MAX}")
        return self


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


# -- consumer groups -------------------------------------------------------------------------------------------

GROUP_NAME_PATTERN = rf"^[a-zA-Z0-9._-]{{1,{limits.GROUP_NAME_MAX_LENGTH}}}$"


class GroupMode(StrEnum):
    ORDERED = "ordered"  # Kafka-like: each partition read by one member at a time, in order; offsets committed
    SHARED = "shared"    # SQS-like: any consumer leases any message; acked one by one; redelivered on timeout


class GroupState(StrEnum):
    EMPTY = "Empty"              # no live members
    REBALANCING = "Rebalancing"  # ordered: a member has not yet joined the current generation
    STABLE = "Stable"            # members live, every one on the current generation
    PAUSED = "Paused"            # no deliveries (per group or all groups); members keep their sessions
    DEAD = "Dead"                # being deleted


class GroupConfig(_Model):
    """Per-group settings; None means the broker default (`consumers.*`)."""

    visibility_timeout_s: Duration | None = Field(
        None, alias="visibilityTimeout", **within(limits.VISIBILITY_TIMEOUT_S))
    max_deliveries: int | None = Field(None, alias="maxDeliveries", **within(limits.MAX_DELIVERIES))
    inflight_capacity: int | None = Field(None, alias="inflightCapacity", **within(limits.INFLIGHT_CAPACITY))
    session_timeout_s: Duration | None = Field(None, alias="sessionTimeout", **within(limits.SESSION_TIMEOUT_S))
    dead_letter_topic: str | None = Field(None, alias="deadLetterTopic", pattern=TOPIC_NAME_PATTERN)
    auto_offset_reset: OffsetReset | None = Field(None, alias="autoOffsetReset")
    assignor: Assignor | None = None


class GroupSpec(_Model):
    """Declare a group (create, or update its settings): what `PUT /v1/groups/{name}` and the operator send."""

    mode: GroupMode = GroupMode.SHARED
    topics: list[str] = Field(default_factory=list, max_length=1000,
                              description="Topics to start tracking now (offsets initialised per autoOffsetReset).")
    config: GroupConfig = GroupConfig()
    paused: StrictBool | None = Field(None, description="Set the paused flag; omitted leaves it as it is.")


class TopicPartition(_Model):
    topic: str
    partition: int = Field(**within(limits.PARTITION))


class MemberInfo(_Model):
    member_id: str = Field(alias="memberId")
    client_id: str = Field(alias="clientId")
    host: str
    assignments: list[TopicPartition] = []
    last_heartbeat_ms: int = Field(alias="lastHeartbeatMs")
    generation: int = 0
    expires_at_ms: int | None = Field(None, alias="expiresAtMs", description="When the coordinator removes the "
                                      "member unless it is heard from again: last heartbeat + session timeout.")


class GroupOffset(_Model):
    topic: str
    partition: int
    committed: int | None
    end_offset: int = Field(alias="endOffset", description="High watermark: first offset not yet readable.")
    lag: int | None = Field(description="endOffset - committed.")
    inflight: int = 0


class GroupInfo(_Model):
    name: str
    mode: GroupMode
    state: GroupState
    paused: bool
    generation: int
    config: GroupConfig = Field(description="Effective settings (group overrides on broker defaults).")
    topics: list[str]
    members: list[MemberInfo]
    offsets: list[GroupOffset]
    inflight: int = 0
    inflight_capacity: int = Field(0, alias="inflightCapacity")
    coordinator: int | None = Field(None, description="Broker id of the group's coordinator: the leader of its "
                                    "__consumer_state partition, which serves every request about the group.")


class GroupSummary(_Model):
    name: str
    mode: GroupMode
    state: GroupState
    members: int
    topics: list[str]
    lag: int
    inflight: int


class JoinRequest(_Model):
    member_id: str | None = Field(None, alias="memberId", description="Omit on first join; send it to rejoin.")
    client_id: str = Field("goqueue-client", alias="clientId", min_length=1,
                           max_length=limits.CLIENT_TEXT_MAX_LENGTH)
    host: str | None = Field(None, max_length=limits.CLIENT_TEXT_MAX_LENGTH,
                             description="Default: the request's peer address.")
    topics: list[str] = Field(min_length=1, max_length=1000)


class JoinResponse(_Model):
    member_id: str = Field(alias="memberId")
    generation: int
    state: GroupState
    assignments: list[TopicPartition]
    session_timeout_ms: int = Field(alias="sessionTimeoutMs")
    paused: bool = False


class HeartbeatRequest(_Model):
    generation: int = Field(**within(limits.GENERATION))


class HeartbeatResponse(_Model):
    generation: int
    state: GroupState
    rejoin: bool = Field(description="The group rebalanced: join again (with memberId) for the new assignment.")
    paused: bool
    assignments: list[TopicPartition]


class ReadPosition(_Model):
    topic: str
    partition: int = Field(**within(limits.PARTITION))
    offset: int = Field(description="The next offset to read on this partition.", **within(limits.OFFSET))


class ConsumeRequest(_Model):
    """Shared mode: `consumerId`. Ordered mode: `memberId` and `generation` from the join."""

    consumer_id: str | None = Field(None, alias="consumerId", min_length=1, max_length=limits.CLIENT_TEXT_MAX_LENGTH)
    member_id: str | None = Field(None, alias="memberId", max_length=limits.CLIENT_TEXT_MAX_LENGTH)
    generation: int | None = Field(None, **within(limits.GENERATION))
    topic: str | None = Field(None, description="Shared mode: required. Ordered mode: restrict to one topic.")
    max_records: int = Field(100, alias="maxRecords", **within(limits.MAX_RECORDS))
    max_bytes: int = Field(1_048_576, alias="maxBytes", **within(limits.MAX_BYTES))
    wait_ms: int = Field(0, alias="waitMs", **within(limits.WAIT_MS))
    start_from: OffsetReset | None = Field(None, alias="startFrom", description="Where to start on a partition "
                                           "the group has no offset for (default: the group's autoOffsetReset).")
    encoding: Encoding | None = None
    positions: list[ReadPosition] | None = Field(
        None, max_length=MAX_IDS_PER_REQUEST, description="Ordered mode: the client keeps its read positions (as a "
        "Kafka consumer does). Each listed partition is read from its offset, every other assigned partition from "
        "its committed offset; send back what the previous answer's `positions` said. A consume sent again after "
        "its answer was lost therefore returns the same records. Left out: the broker's read position for the "
        "member, which a lost answer moves past records the client never got.")


class DeliveredRecord(FetchedRecord):
    lease_id: str | None = Field(None, alias="leaseId", description="Shared mode: ack or nack with this id.")
    delivery_count: int = Field(1, alias="deliveryCount")
    lease_expires_at_ms: int | None = Field(None, alias="leaseExpiresAtMs")


class ConsumeResponse(_Model):
    group: str
    records: list[DeliveredRecord]
    paused: bool = Field(False, description="The group is paused: no deliveries until resumed (not an error).")
    state: GroupState
    generation: int | None = None
    positions: list[ReadPosition] = Field(
        default_factory=list, description="Ordered mode: the next offset to read on each partition this answer "
        "read; send them in the next consume's `positions`.")


class AckRequest(_Model):
    lease_ids: list[Annotated[str, Field(max_length=limits.LEASE_ID_MAX_LENGTH)]] = Field(
        alias="leaseIds", min_length=1, max_length=MAX_IDS_PER_REQUEST)


class NackRequest(AckRequest):
    delay_s: Duration = Field(0.0, alias="delay", description="Redeliver no sooner than this (seconds or 5s, 1m).",
                              **within(limits.NACK_DELAY_S))
    reason: str | None = Field(None, max_length=1024, description="Recorded in the dead-letter headers.")


class AckResponse(_Model):
    acked: int = Field(0, description="Leases settled by this request.")
    already_done: int = Field(0, alias="alreadyDone", description="Messages already acked or dead-lettered.")
    stale: list[str] = Field(default_factory=list, description="Leases no longer held (expired and re-leased): "
                             "a nack or release of these had no effect.")
    dead_lettered: int = Field(0, alias="deadLettered")


class OffsetCommit(_Model):
    topic: str
    partition: int = Field(**within(limits.PARTITION))
    offset: int = Field(description="The next offset to read (last processed + 1), as in Kafka.",
                        **within(limits.OFFSET))


class CommitRequest(_Model):
    member_id: str | None = Field(None, alias="memberId", description="Required while the group has members.",
                                  max_length=limits.CLIENT_TEXT_MAX_LENGTH)
    generation: int | None = Field(None, **within(limits.GENERATION))
    offsets: list[OffsetCommit] = Field(min_length=1, max_length=MAX_IDS_PER_REQUEST)


class CommitResponse(_Model):
    committed: list[OffsetCommit]


class ResetTarget(StrEnum):
    EARLIEST = "earliest"
    LATEST = "latest"
    OFFSET = "offset"
    DATETIME = "datetime"
    TIMESTAMP = "timestamp"  # the same as datetime: the GoQueueConsumerGroup CRD's name for it
    SHIFT = "shift"


class OffsetResetRequest(_Model):
    topic: str
    partition: int | None = Field(None, description="Default: every partition of the topic.",
                                  **within(limits.PARTITION))
    to: ResetTarget
    offset: int | None = Field(None, description="to=offset", **within(limits.OFFSET))
    timestamp_ms: int | None = Field(None, alias="timestampMs", description="to=datetime",
                                     **within(limits.TIMESTAMP_MS))
    shift_by: int | None = Field(None, alias="shiftBy", description="to=shift (negative moves back)",
                                 **within(limits.SHIFT))
    dry_run: StrictBool = Field(False, alias="dryRun")
    force: StrictBool = Field(False, description="Reset even while members live (they are rebalanced / lose "
                              "leases).")

    @model_validator(mode="after")
    def _value_for_target(self) -> OffsetResetRequest:
        needs = {ResetTarget.OFFSET: ("offset", self.offset),
                 ResetTarget.DATETIME: ("timestampMs", self.timestamp_ms),
                 ResetTarget.TIMESTAMP: ("timestampMs", self.timestamp_ms),
                 ResetTarget.SHIFT: ("shiftBy", self.shift_by)}
        if self.to in needs and needs[self.to][1] is None:
            raise ValueError(f"to={self.to.value} needs {needs[self.to][0]}")
        return self


class OffsetResetEntry(_Model):
    topic: str
    partition: int
    current: int | None
    target: int
    clamped: bool = Field(False, description="The asked-for offset was outside the log; clamped to its bounds.")


class OffsetResetPlan(_Model):
    group: str
    dry_run: bool = Field(alias="dryRun")
    applied: bool
    partitions: list[OffsetResetEntry]


class InflightMessage(_Model):
    group: str
    topic: str
    partition: int
    offset: int
    state: str = Field(description="leased (with a consumer) or waiting (expired or nacked, to be redelivered)")
    consumer_id: str | None = Field(alias="consumerId")
    lease_id: str | None = Field(alias="leaseId")
    delivery_count: int = Field(alias="deliveryCount")
    deadline_ms: int = Field(alias="deadlineMs", description="Lease expiry, or earliest redelivery when waiting.")


class InflightList(_Model):
    messages: list[InflightMessage]
    total: int
    truncated: bool = False


class PauseResponse(_Model):
    paused: bool
    all: bool = False
    groups: list[str]


class GroupBackup(_Model):
    name: str
    spec: GroupSpec
    offsets: list[OffsetCommit] = []


class MetadataBackup(_Model):
    """`goqueue-admin backup metadata`: topics, their settings, groups and committed offsets."""

    version: int = 1
    created_at_ms: int = Field(alias="createdAtMs")
    broker_id: int = Field(alias="brokerId")
    topics: list[TopicCreate]
    groups: list[GroupBackup]
    all_paused: bool = Field(False, alias="allPaused")


class RestoreReport(_Model):
    topics_created: list[str] = Field(default_factory=list, alias="topicsCreated")
    topics_updated: list[str] = Field(default_factory=list, alias="topicsUpdated")
    topics_unchanged: list[str] = Field(default_factory=list, alias="topicsUnchanged")
    groups_restored: list[str] = Field(default_factory=list, alias="groupsRestored")
    offsets_restored: int = Field(0, alias="offsetsRestored")
    skipped: list[str] = Field(default_factory=list, description="What was not restored, and why.")


# -- cluster read-outs ----------------------------------------------------------------------------------------

class ClusterMember(_Model):
    broker_id: int = Field(alias="brokerId")
    host: str
    http_port: int = Field(alias="httpPort")
    grpc_port: int = Field(alias="grpcPort")
    raft_port: int = Field(alias="raftPort")
    role: str = Field(description="leader or follower (of the metadata Raft group)")
    status: str = Field(description="up, down or unknown")
    zone: str | None = None


class ClusterLeader(_Model):
    leader: int | None = Field(description="Broker id of the metadata leader; null while an election runs.")
    host: str | None
    term: int


class ClusterStatus(_Model):
    mode: str = Field(description="single-node, or cluster")
    healthy: bool
    broker_id: int = Field(alias="brokerId")
    leader: ClusterLeader
    brokers: int
    live_brokers: int = Field(alias="liveBrokers")
    topics: int
    partitions: int
    offline_partitions: int = Field(alias="offlinePartitions")
    under_replicated_partitions: int = Field(alias="underReplicatedPartitions")
    members: list[ClusterMember]


class ReplicaState(_Model):
    topic: str
    partition: int
    leader: int | None
    leader_epoch: int = Field(alias="leaderEpoch")
    replicas: list[int]
    isr: list[int]
    high_watermark: int = Field(alias="highWatermark")
    log_end_offset: int = Field(alias="logEndOffset")
    under_replicated: bool = Field(alias="underReplicated")
    follower_lag: dict[str, int] = Field(
        default_factory=dict, alias="followerLag",
        description="Records each follower is behind the leader's log end (known when this broker leads).")


class ReplicationStatus(_Model):
    broker_id: int = Field(alias="brokerId")
    partitions: list[ReplicaState]
    under_replicated: int = Field(alias="underReplicated")
    offline: int


# -- the operator's admin API (`/v1/admin/cluster`, docs/OPERATOR.md): the questions a safe rolling restart, drain
# and scale-down ask. `reasons` is empty when the answer is yes; the defaults read answers of older brokers.

Reasons = Annotated[list[str], Field(description="Why not, one line per partition or check; empty when yes.")]


class RestartCheck(_Model):
    """Would restarting this broker now keep every partition at min.insync.replicas and the metadata quorum?"""

    broker_id: int = Field(alias="brokerId")
    safe: bool
    reasons: Reasons = []


class CaughtUp(_Model):
    """Is a restarted broker back in the metadata quorum and in the ISR of every partition it hosts?"""

    broker_id: int = Field(alias="brokerId")
    caught_up: bool = Field(alias="caughtUp")
    reasons: Reasons = []


class LeadershipTransfer(_Model):
    """Partition leadership moved off this broker: `done` once it leads none."""

    broker_id: int = Field(alias="brokerId")
    done: bool
    reasons: Reasons = []


class HeldReplicas(_Model):
    """The partition replicas and leaderships this broker holds."""

    broker_id: int = Field(alias="brokerId")
    replicas: int
    leaders: int = 0


class DrainProgress(_Model):
    """Replicas moving off this broker (before a scale-down): `done` once it holds none; call again until then."""

    broker_id: int = Field(alias="brokerId")
    done: bool
    replicas: int = Field(description="Replicas the broker still holds.")
    reasons: Reasons = []


class RebalanceAccepted(_Model):
    """Replicas spread over all brokers (after a scale-up); the new replicas copy in the background."""

    accepted: bool
    moved: int = Field(0, description="Partitions reassigned.")
    reasons: Reasons = []


# -- replica reassignment (`/v1/admin/cluster/reassignments`): plan, execute, follow, cancel ---------------------

def _bytes_per_second(value: Any) -> Any:
    """`"10MiB/s"` as `"10MiB"`: a throttle reads like the rate it is."""
    return value[:-2].strip() if isinstance(value, str) and value.endswith("/s") else value


Rate = Annotated[Size, BeforeValidator(_bytes_per_second), Field(ge=1)]


class ReassignmentGoals(_Model):
    """What a reassignment proposal should achieve (any combination)."""

    balance: bool = Field(False, description="Even replicas and preferred leaders across brokers and zones.")
    drain_brokers: list[int] = Field([], alias="drainBrokers", description="Move every replica off these brokers.")
    add_brokers: list[int] = Field([], alias="addBrokers", description="Spread replicas onto these (new) brokers.")
    replication_factor: dict[str, Annotated[int, Field(**within(limits.REPLICATION_FACTOR))]] = Field(
        {}, alias="replicationFactor", description="Topic name → its new replication factor.")
    throttle: Rate | None = Field(None, description="Bytes/s the copies would be throttled to (for the estimate).")


class ReplicaMove(_Model):
    topic: str
    partition: int
    replicas: list[int] = Field(description="The replicas now, preferred leader first.")
    target: list[int] = Field(description="The replicas after the move, preferred leader first.")
    version: int = Field(description="The partition version planned from: a move of a partition changed since is "
                                     "refused, never applied over the newer change.")
    bytes_to_copy: int = Field(0, alias="bytesToCopy", description="Partition size times the new replicas.")


class ReassignmentPlan(_Model):
    """A proposal: review it, then execute it (its moves as they are)."""

    moves: list[ReplicaMove]
    bytes_to_copy: int = Field(alias="bytesToCopy")
    throttle: int | None = Field(None, description="Bytes/s the estimate assumes.")
    estimated_s: float | None = Field(None, alias="estimatedSeconds", description="bytesToCopy / throttle.")
    reasons: Reasons = Field([], description="What the plan could not do or measure.")


class ReassignmentExecute(_Model):
    moves: list[ReplicaMove]
    throttle: Rate | None = Field(None, description="Bytes/s each broker fetches for the replicas it is adding, "
                                  "until the last reassignment completes (`10MiB/s`); none: unthrottled.")


class ReassignmentStarted(_Model):
    started: int = Field(description="Moves begun now.")
    reasons: Reasons = Field([], description="Moves not begun, and why (a partition changed since the plan).")


class PartitionReassignment(_Model):
    topic: str
    partition: int
    replicas: list[int] = Field(description="Original and new replicas while they copy.")
    target: list[int]
    adding: list[int]
    removing: list[int]
    isr: list[int]
    leader: int | None
    copying: list[int] = Field(description="New replicas not in sync yet.")
    bytes_to_copy: int | None = Field(None, alias="bytesToCopy", description="The leader's partition size times "
                                      "the new replicas; none when the leader did not answer.")
    bytes_copied: int | None = Field(None, alias="bytesCopied", description="What the new replicas hold so far "
                                     "(each counted up to the leader's size); none when one did not answer.")


class ReassignmentProgress(_Model):
    done: bool = Field(description="No partition is moving.")
    throttle: int | None = Field(None, description="Bytes/s in force for the copies.")
    partitions: list[PartitionReassignment]
    bytes_to_copy: int | None = Field(None, alias="bytesToCopy", description="Sum over the moving partitions; "
                                      "none when one is unknown.")
    bytes_copied: int | None = Field(None, alias="bytesCopied", description="Sum over the moving partitions; "
                                     "none when one is unknown.")


class ReassignmentCancel(_Model):
    partitions: list[TopicPartition] = Field([], description="The moves to cancel; none: every move.")


class ReassignmentCancelled(_Model):
    cancelled: int
    reasons: Reasons = []


# -- probes and version ------------------------------------------------------------------------------------------

class Liveness(_Model):
    status: Literal["ok"] = "ok"


class Readiness(_Model):
    """`/readyz`: answered with 200 when ready, 503 when not (a probe answer, not an error)."""

    status: Literal["ready", "not ready"]
    offline_partitions: int = Field(alias="offlinePartitions")


class BrokerVersion(_Model):
    version: str = Field(description="The broker's release, e.g. 0.1.0.")
    broker_id: int = Field(alias="brokerId")


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


# -- security: SCRAM authentication, users, ACLs (docs/SECURITY.md) --------------------------------------------------

SCRAM_MESSAGE_MAX_LENGTH = 1024  # SCRAM messages are a few hundred characters


class ScramStartRequest(_Model):
    mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    client_first: str = Field(alias="clientFirst", min_length=1, max_length=SCRAM_MESSAGE_MAX_LENGTH,
                              description="RFC 5802 client-first message: n,,n=<user>,r=<nonce>")


class ScramStartResponse(_Model):
    exchange_id: str = Field(alias="exchangeId", description="Send it back with the client-final message, to the "
                             "same broker, within 30 s.")
    server_first: str = Field(alias="serverFirst")


class ScramFinishRequest(_Model):
    exchange_id: str = Field(alias="exchangeId", min_length=1, max_length=64)
    client_final: str = Field(alias="clientFinal", min_length=1, max_length=SCRAM_MESSAGE_MAX_LENGTH)


class ScramFinishResponse(_Model):
    server_final: str = Field(alias="serverFinal", description="Check it: it proves the broker holds the credential.")
    token: str = Field(description="Send as `Authorization: Bearer <token>` (gRPC metadata `authorization`).")
    principal: str
    expires_at_ms: int = Field(alias="expiresAtMs")


class ScramCredentialSpec(_Model):
    """A user's SCRAM-SHA-512 credential, computed by the client from the password: the password is never sent."""

    mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    salt: str = Field(min_length=16, max_length=128, description="base64, at least 12 bytes")
    iterations: int = Field(ge=4096, le=1_000_000)
    stored_key: str = Field(alias="storedKey", min_length=88, max_length=88, description="base64 of 64 bytes")
    server_key: str = Field(alias="serverKey", min_length=88, max_length=88, description="base64 of 64 bytes")

    @field_validator("salt", "stored_key", "server_key")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError("not base64") from None
        return value


class UserQuotasSpec(_Model):
    """A user's byte-rate quotas, bytes/s on each broker (goqueue.security.quotas); null or absent: unlimited."""

    producer_byte_rate: int | None = Field(None, alias="producerByteRate", **within(limits.BYTE_RATE))
    consumer_byte_rate: int | None = Field(None, alias="consumerByteRate", **within(limits.BYTE_RATE))


class UserInfo(_Model):
    name: str
    mechanism: str = "SCRAM-SHA-512"
    iterations: int
    producer_byte_rate: int | None = Field(None, alias="producerByteRate")
    consumer_byte_rate: int | None = Field(None, alias="consumerByteRate")


class AclSpec(_Model):
    principal: str = Field(max_length=140, description="User:<name>, or User:* for every principal")
    resource_type: Literal["topic", "group", "cluster"] = Field(alias="resourceType")
    name: str = Field(min_length=1, max_length=limits.TOPIC_NAME_MAX_LENGTH,
                      description="The resource's name, a prefix (pattern prefixed), or * for all of its type")
    pattern: Literal["literal", "prefixed"] = "literal"
    operation: Literal["produce", "consume", "describe", "alter", "delete", "create", "reset", "admin", "all"]
    allow: StrictBool = True
