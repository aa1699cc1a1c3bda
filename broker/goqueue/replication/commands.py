"""Every metadata command, typed, and the one place commands are built.

A command is a TypedDict tagged by its `op`: a plain dict at run time, so it pickles into PySyncObj's journal in the
format journals already hold (and `raft_codec` reads it as plain data). Keys marked NotRequired are absent from
commands journaled by older versions; `metadata.apply_command` reads them with their old default.

Proposers put everything a command needs into it (timestamps, computed assignments, the epoch or version they
saw), so applying it stays a pure function of (state, command).
"""

from collections.abc import Mapping, Sequence
from typing import Literal, NotRequired, TypedDict

from goqueue.replication.state import AclEntry, GroupEntry, TopicEntry, TopicSettings, UserEntry, UserQuotas

# What the commands a broker applies mean, as a number every broker registers (Kafka's metadata.version). A command
# (or a field) the brokers below a version do not know is proposed only once every registered broker is at it
# (`ClusterMembership.propose`): an older broker would apply it differently, and the replicas of the metadata would
# disagree from then on.
#   1: every release before metadata versions were registered (they register none).
#   2: replica reassignment, the replication throttle, users and ACLs; elect_leader's expected_version.
METADATA_VERSION = 2

Assignment = dict[int, list[int]]  # partition index -> replica list, preferred leader first


class Barrier(TypedDict):
    op: Literal["barrier"]
    broker: int


class RegisterBroker(TypedDict):
    op: Literal["register_broker"]
    id: int
    host: str
    http_port: int
    grpc_port: int
    raft_address: str
    zone: str | None
    directory_id: NotRequired[str]  # absent before data volumes had an identity; "" means none yet
    internal_port: NotRequired[int]  # absent before the internal (broker-to-broker) listener existed
    internal_tls: NotRequired[bool]  # present (True) only when the internal listener speaks TLS
    metadata_version: NotRequired[int]  # the commands this broker applies (METADATA_VERSION); absent: 1


class ReplaceStorage(TypedDict):
    op: Literal["replace_storage"]
    broker: int
    directory_id: str


class CreateTopic(TypedDict):
    op: Literal["create_topic"]
    name: str
    replication_factor: int
    config: TopicSettings
    created_at_s: float
    assignment: Assignment
    internal: NotRequired[bool]


class DeleteTopic(TypedDict):
    op: Literal["delete_topic"]
    name: str


class GrowPartitions(TypedDict):
    op: Literal["grow_partitions"]
    name: str
    assignment: Assignment


class SetTopicConfig(TypedDict):
    op: Literal["set_topic_config"]
    name: str
    config: TopicSettings


class ElectLeader(TypedDict):
    op: Literal["elect_leader"]
    topic: str
    partition: int
    expected_epoch: int
    expected_version: NotRequired[int]  # metadata version 2: absent when a broker of version 1 is a member
    leader: int | None
    isr: list[int]


class ChangeIsr(TypedDict):
    op: Literal["change_isr"]
    topic: str
    partition: int
    leader_epoch: int
    expected_version: int
    isr: list[int]


class LeaveIsr(TypedDict):
    op: Literal["leave_isr"]
    topic: str
    partition: int
    broker: int


class Reassign(TypedDict):
    op: Literal["reassign"]
    topic: str
    partition: int
    replicas: list[int]
    expected_version: int


class BeginReassignment(TypedDict):
    op: Literal["begin_reassignment"]
    topic: str
    partition: int
    target: list[int]
    expected_version: int


class CompleteReassignment(TypedDict):
    op: Literal["complete_reassignment"]
    topic: str
    partition: int
    expected_version: int


class CancelReassignment(TypedDict):
    op: Literal["cancel_reassignment"]
    topic: str
    partition: int
    expected_version: int


class SetReplicationThrottle(TypedDict):
    op: Literal["set_replication_throttle"]
    bytes_per_s: int | None  # None: unthrottled


class SetGroup(TypedDict):
    op: Literal["set_group"]
    group: str
    coordinator: NotRequired[int | None]  # each of these two is changed only when present
    paused: NotRequired[bool]


class SetPausedAll(TypedDict):
    op: Literal["set_paused_all"]
    paused: bool


class Restore(TypedDict):
    op: Literal["restore"]
    topics: dict[str, TopicEntry]
    groups: dict[str, GroupEntry]


class UpsertUser(TypedDict):
    op: Literal["upsert_user"]
    name: str
    credential: UserEntry


class DeleteUser(TypedDict):
    op: Literal["delete_user"]
    name: str


class SetUserQuotas(TypedDict):
    op: Literal["set_user_quotas"]
    name: str
    quotas: UserQuotas  # replaces the user's quotas: a rate left out is unlimited


class AddAcl(TypedDict):
    op: Literal["add_acl"]
    acl: AclEntry


class RemoveAcl(TypedDict):
    op: Literal["remove_acl"]
    acl: AclEntry


Command = (Barrier | RegisterBroker | ReplaceStorage | CreateTopic | DeleteTopic | GrowPartitions | SetTopicConfig
           | ElectLeader | ChangeIsr | LeaveIsr | Reassign | BeginReassignment | CompleteReassignment
           | CancelReassignment | SetReplicationThrottle | SetGroup | SetPausedAll | Restore | UpsertUser | DeleteUser
           | SetUserQuotas | AddAcl | RemoveAcl)


# -- constructors: every command in the code base is built here ----------------------------------------------------

def barrier(broker: int) -> Barrier:
    """A no-op: once a broker sees its own barrier applied, everything committed before it is applied too."""
    return {"op": "barrier", "broker": broker}


def register_broker(broker: int, *, host: str, http_port: int, grpc_port: int, raft_address: str,
                    zone: str | None, directory_id: str, internal_port: int,
                    internal_tls: bool = False) -> RegisterBroker:
    command: RegisterBroker = {
        "op": "register_broker", "id": broker, "host": host, "http_port": http_port, "grpc_port": grpc_port,
        "raft_address": raft_address, "zone": zone, "directory_id": directory_id, "internal_port": internal_port,
        "metadata_version": METADATA_VERSION}
    if internal_tls:  # only then: a broker without TLS registers exactly as before
        command["internal_tls"] = True
    return command


def replace_storage(broker: int, directory_id: str) -> ReplaceStorage:
    return {"op": "replace_storage", "broker": broker, "directory_id": directory_id}


def create_topic(name: str, *, replication_factor: int, config: TopicSettings, created_at_s: float,
                 assignment: Mapping[int, Sequence[int]], internal: bool = False) -> CreateTopic:
    return {"op": "create_topic", "name": name, "replication_factor": replication_factor, "config": dict(config),
            "created_at_s": created_at_s, "assignment": _assignment(assignment), "internal": internal}


def delete_topic(name: str) -> DeleteTopic:
    return {"op": "delete_topic", "name": name}


def grow_partitions(name: str, assignment: Mapping[int, Sequence[int]]) -> GrowPartitions:
    return {"op": "grow_partitions", "name": name, "assignment": _assignment(assignment)}


def set_topic_config(name: str, config: TopicSettings) -> SetTopicConfig:
    return {"op": "set_topic_config", "name": name, "config": dict(config)}


def elect_leader(topic: str, partition: int, *, expected_epoch: int, expected_version: int | None,
                 leader: int | None, isr: Sequence[int]) -> ElectLeader:
    """CAS on the leader epoch and the partition version the proposer saw (the version: an ISR change the leader
    made since, at the same epoch, must not be undone by the `isr` planned before it; None: the version-1 command,
    epoch only); `leader` None takes the partition offline."""
    command: ElectLeader = {"op": "elect_leader", "topic": topic, "partition": partition,
                            "expected_epoch": expected_epoch, "leader": leader, "isr": list(isr)}
    if expected_version is not None:
        command["expected_version"] = expected_version
    return command


def change_isr(topic: str, partition: int, *, leader_epoch: int, expected_version: int,
               isr: Sequence[int]) -> ChangeIsr:
    """The partition leader's ISR change; CAS on its leader epoch and the partition version."""
    return {"op": "change_isr", "topic": topic, "partition": partition, "leader_epoch": leader_epoch,
            "expected_version": expected_version, "isr": list(isr)}


def leave_isr(topic: str, partition: int, broker: int) -> LeaveIsr:
    return {"op": "leave_isr", "topic": topic, "partition": partition, "broker": broker}


def begin_reassignment(topic: str, partition: int, *, target: Sequence[int],
                       expected_version: int) -> BeginReassignment:
    """Start moving a partition to `target` (preferred leader first): the new replicas join, copy, then the old
    ones leave (`complete_reassignment`). CAS on the partition version."""
    return {"op": "begin_reassignment", "topic": topic, "partition": partition, "target": list(target),
            "expected_version": expected_version}


def complete_reassignment(topic: str, partition: int, *, expected_version: int) -> CompleteReassignment:
    """The controller's last step once every target replica is in sync and one of them leads."""
    return {"op": "complete_reassignment", "topic": topic, "partition": partition,
            "expected_version": expected_version}


def cancel_reassignment(topic: str, partition: int, *, expected_version: int) -> CancelReassignment:
    """Back to the original replicas."""
    return {"op": "cancel_reassignment", "topic": topic, "partition": partition, "expected_version": expected_version}


def set_replication_throttle(bytes_per_s: int | None) -> SetReplicationThrottle:
    return {"op": "set_replication_throttle", "bytes_per_s": bytes_per_s}


def set_paused_all(paused: bool) -> SetPausedAll:
    return {"op": "set_paused_all", "paused": paused}


def upsert_user(name: str, credential: UserEntry) -> UpsertUser:
    """Create a user, or replace its credential (a new password)."""
    return {"op": "upsert_user", "name": name, "credential": credential.copy()}


def delete_user(name: str) -> DeleteUser:
    return {"op": "delete_user", "name": name}


def set_user_quotas(name: str, *, producer_byte_rate: int | None, consumer_byte_rate: int | None) -> SetUserQuotas:
    """Set a user's byte-rate quotas (bytes/s); None is unlimited."""
    quotas: UserQuotas = {}
    if producer_byte_rate is not None:
        quotas["producer_byte_rate"] = producer_byte_rate
    if consumer_byte_rate is not None:
        quotas["consumer_byte_rate"] = consumer_byte_rate
    return {"op": "set_user_quotas", "name": name, "quotas": quotas}


def add_acl(acl: AclEntry) -> AddAcl:
    return {"op": "add_acl", "acl": acl.copy()}


def remove_acl(acl: AclEntry) -> RemoveAcl:
    return {"op": "remove_acl", "acl": acl.copy()}


# Nothing proposes these three now; journals of earlier versions hold them, so replay still applies them.

def reassign(topic: str, partition: int, *, replicas: Sequence[int], expected_version: int) -> Reassign:
    """The replica list set at once (before reassignments added replicas first): replaced by `begin_reassignment`."""
    return {"op": "reassign", "topic": topic, "partition": partition, "replicas": list(replicas),
            "expected_version": expected_version}



def set_group(group: str, *, coordinator: int | None = None, paused: bool | None = None) -> SetGroup:
    """Changes only what is given."""
    command: SetGroup = {"op": "set_group", "group": group}
    if coordinator is not None:
        command["coordinator"] = coordinator
    if paused is not None:
        command["paused"] = paused
    return command


def restore(topics: dict[str, TopicEntry], groups: dict[str, GroupEntry]) -> Restore:
    """Topics and groups replaced from a metadata backup."""
    return {"op": "restore", "topics": topics, "groups": groups}


def _assignment(assignment: Mapping[int, Sequence[int]]) -> Assignment:
    return {int(index): list(replicas) for index, replicas in assignment.items()}
