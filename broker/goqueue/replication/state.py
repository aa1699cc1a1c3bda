"""The shape of the cluster metadata that `metadata.apply_command` changes and PySyncObj journals and dumps.

TypedDicts, not classes: at run time the state is the same plain dicts, lists, ints and strings as before it was
typed, so the journal and dump format is unchanged and `raft_codec` (plain data only) still reads every byte of it.
Code outside `replication/` reads it through the read-only types of `view.py`.
"""

# No `from __future__ import annotations`: the TypedDicts must see NotRequired at run time (__optional_keys__).
from typing import NotRequired, TypedDict

# A stored topic setting (TopicConfig dumped by alias in JSON mode): read back tolerantly by `models.load_stored`.
ConfigValue = str | int | float | bool | None
TopicSettings = dict[str, ConfigValue]


class BrokerEntry(TypedDict):
    host: str
    http_port: int
    grpc_port: int
    raft_address: str
    zone: str | None
    directory_id: NotRequired[str]  # absent for brokers registered before data volumes had an identity
    internal_port: NotRequired[int]  # absent for brokers registered before the internal listener existed
    internal_tls: NotRequired[bool]  # True: peers call its internal listener over TLS (absent: plain HTTP)
    metadata_version: NotRequired[int]  # commands.METADATA_VERSION it applies; absent: 1


class PartitionState(TypedDict):
    replicas: list[int]  # the first is the preferred leader
    leader: int | None  # None: offline
    leader_epoch: int
    isr: list[int]
    version: int  # bumped by every change: the compare-and-set token of ISR changes and reassignments
    # A replica reassignment in progress (KIP-455): absent when none is (and in older journals). `replicas` is then
    # the original replicas followed by `adding_replicas`; it becomes `target_replicas` once they are all in sync.
    target_replicas: NotRequired[list[int]]
    adding_replicas: NotRequired[list[int]]  # in the target, not in the original replicas: copying
    removing_replicas: NotRequired[list[int]]  # in the original replicas, not in the target: deleted at the end


class TopicEntry(TypedDict):
    name: str
    partitions: int
    replication_factor: int
    config: TopicSettings
    created_at_s: float
    internal: bool
    partition_state: dict[int, PartitionState]


class GroupEntry(TypedDict):
    coordinator: int | None
    paused: bool


class UserQuotas(TypedDict):
    """A user's byte-rate quotas (goqueue.security.quotas), bytes/s per broker; an absent one is unlimited."""

    producer_byte_rate: NotRequired[int]
    consumer_byte_rate: NotRequired[int]


class UserEntry(TypedDict):
    """A user's SCRAM-SHA-512 credential (goqueue.security.scram): never the password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
    quotas: NotRequired[UserQuotas]  # absent: no quota (and in journals written before quotas existed)


class AclEntry(TypedDict):
    """One ACL (goqueue.security.acls.Acl as plain data)."""

    principal: str  # User:<name> or User:*
    resource_type: str  # topic | group | cluster
    name: str
    pattern: str  # literal | prefixed
    operation: str
    allow: bool


class MetadataState(TypedDict):
    brokers: dict[int, BrokerEntry]
    topics: dict[str, TopicEntry]
    groups: dict[str, GroupEntry]
    paused_all: bool
    applied: int  # commands applied so far: readers cache what they derive from the state until it moves
    users: NotRequired[dict[str, UserEntry]]  # absent until the first user is created (and in older journals)
    acls: NotRequired[list[AclEntry]]  # likewise, until the first ACL is added
    # Bytes/s every broker's fetcher allows the replicas it is adding; set with a reassignment, gone with the last.
    replication_throttle: NotRequired[int]


def empty_state() -> MetadataState:
    return {"brokers": {}, "topics": {}, "groups": {}, "paused_all": False, "applied": 0}
