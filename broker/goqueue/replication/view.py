"""The cluster metadata as code outside `replication/` reads it: read-only, typed, and free.

The types below are the state types of `state.py` with every field ReadOnly and every container a Mapping or a
Sequence, so strict mypy refuses any write through them, nested ones included. They describe the very dicts Raft
published (no copy, no wrapper per entry): the hot path — every produce looks up its partition's leader — pays one
attribute read and the dict lookups it paid before. Writes go through `commands.py` and Raft; the published state
is copy-on-write (`raft.RaftMetadata._apply`), so a view someone holds never changes under them either.
"""

from collections.abc import Mapping, Sequence
from typing import NotRequired

from typing_extensions import ReadOnly, TypedDict  # ReadOnly is in `typing` from Python 3.13

from goqueue.replication.state import ConfigValue, MetadataState


class BrokerView(TypedDict):
    host: ReadOnly[str]
    http_port: ReadOnly[int]
    grpc_port: ReadOnly[int]
    raft_address: ReadOnly[str]
    zone: ReadOnly[str | None]
    directory_id: NotRequired[ReadOnly[str]]
    internal_port: NotRequired[ReadOnly[int]]
    internal_tls: NotRequired[ReadOnly[bool]]
    metadata_version: NotRequired[ReadOnly[int]]


class PartitionView(TypedDict):
    replicas: ReadOnly[Sequence[int]]
    leader: ReadOnly[int | None]
    leader_epoch: ReadOnly[int]
    isr: ReadOnly[Sequence[int]]
    version: ReadOnly[int]
    target_replicas: NotRequired[ReadOnly[Sequence[int]]]
    adding_replicas: NotRequired[ReadOnly[Sequence[int]]]
    removing_replicas: NotRequired[ReadOnly[Sequence[int]]]


class TopicView(TypedDict):
    name: ReadOnly[str]
    partitions: ReadOnly[int]
    replication_factor: ReadOnly[int]
    config: ReadOnly[Mapping[str, ConfigValue]]
    created_at_s: ReadOnly[float]
    internal: ReadOnly[bool]
    partition_state: ReadOnly[Mapping[int, PartitionView]]


class GroupView(TypedDict):
    coordinator: ReadOnly[int | None]
    paused: ReadOnly[bool]


class QuotasView(TypedDict):
    producer_byte_rate: NotRequired[ReadOnly[int]]
    consumer_byte_rate: NotRequired[ReadOnly[int]]


class UserView(TypedDict):
    salt: ReadOnly[bytes]
    iterations: ReadOnly[int]
    stored_key: ReadOnly[bytes]
    server_key: ReadOnly[bytes]
    quotas: NotRequired[ReadOnly[QuotasView]]


class AclView(TypedDict):
    principal: ReadOnly[str]
    resource_type: ReadOnly[str]
    name: ReadOnly[str]
    pattern: ReadOnly[str]
    operation: ReadOnly[str]
    allow: ReadOnly[bool]


class StateView(TypedDict):
    brokers: ReadOnly[Mapping[int, BrokerView]]
    topics: ReadOnly[Mapping[str, TopicView]]
    groups: ReadOnly[Mapping[str, GroupView]]
    paused_all: ReadOnly[bool]
    applied: ReadOnly[int]
    users: NotRequired[ReadOnly[Mapping[str, UserView]]]
    acls: NotRequired[ReadOnly[Sequence[AclView]]]
    replication_throttle: NotRequired[ReadOnly[int]]


_NO_USERS: Mapping[str, UserView] = {}
_NO_ACLS: Sequence[AclView] = ()


class MetadataView:
    """One published metadata snapshot, with the lookups callers make. Cheap to make: it only holds the snapshot."""

    __slots__ = ("state",)

    def __init__(self, state: MetadataState | StateView) -> None:
        self.state: StateView = state

    @property
    def brokers(self) -> Mapping[int, BrokerView]:
        return self.state["brokers"]

    @property
    def topics(self) -> Mapping[str, TopicView]:
        return self.state["topics"]

    @property
    def groups(self) -> Mapping[str, GroupView]:
        return self.state["groups"]

    @property
    def paused_all(self) -> bool:
        return self.state["paused_all"]

    @property
    def applied(self) -> int:
        """Commands applied so far: what a reader caching something derived from the metadata compares."""
        return self.state["applied"]

    @property
    def users(self) -> Mapping[str, UserView]:
        """SCRAM credentials by user name (none in metadata written before users existed)."""
        return self.state.get("users", _NO_USERS)

    @property
    def acls(self) -> Sequence[AclView]:
        return self.state.get("acls", _NO_ACLS)

    @property
    def replication_throttle(self) -> int | None:
        """Bytes/s a broker may fetch for the replicas it is adding (None: no reassignment throttle)."""
        return self.state.get("replication_throttle")

    def broker(self, broker_id: int) -> BrokerView | None:
        return self.state["brokers"].get(broker_id)

    def topic(self, name: str) -> TopicView | None:
        return self.state["topics"].get(name)

    def partition(self, topic: str, index: int) -> PartitionView | None:
        entry = self.state["topics"].get(topic)
        return None if entry is None else entry["partition_state"].get(index)

    def leader(self, topic: str, index: int) -> int | None:
        """The partition's leader; None when it is offline or does not exist."""
        partition = self.partition(topic, index)
        return None if partition is None else partition["leader"]
