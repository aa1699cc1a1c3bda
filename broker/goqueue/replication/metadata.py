"""Cluster metadata as a pure state machine: brokers, topics, partition assignments, leaders, leader epochs,
in-sync replica sets, consumer-group coordinators and paused flags.

Every change is a command (a plain dict, so it pickles into PySyncObj's journal and reads in a debugger) applied
by `apply_command`, a pure function of (state, command): no clock, no randomness, no I/O — the proposer puts
timestamps and computed assignments into the command. The same commands therefore rebuild the same state on
every broker, and the whole state machine is tested without a network (`tests/unit/test_metadata.py`).

Partition state changes are compare-and-set on the leader epoch (and, for ISR changes, the partition's
`version`): a controller or leader acting on a stale view is refused instead of overwriting a newer decision —
the fencing that prevents split brain at the metadata level.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from goqueue.replication import commands as cmds
from goqueue.replication.state import BrokerEntry, MetadataState, PartitionState, TopicEntry, empty_state
from goqueue.replication.view import BrokerView, PartitionView, StateView

# What a command returns once applied: the new topic, the changed partition, or the partitions a broker that
# replaced its storage stranded.
CommandResult = TopicEntry | PartitionState | list[str] | None

__all__ = ["CommandResult", "MetadataConflict", "apply_command", "assign_replicas", "choose_new_leader",
           "empty_state", "restart_would_break", "writable_copy"]


class MetadataConflict(Exception):
    """A command lost a race (stale epoch/version) or names something that does not exist."""


# -- placement (pure, used by proposers) -------------------------------------------------------------------------

def assign_replicas(brokers: Mapping[int, BrokerView], partitions: range,
                    replication_factor: int) -> dict[int, list[int]]:
    """Replica lists per partition, spread round-robin and zone-aware (Kafka's rack-aware placement).

    The first replica of each partition is its preferred leader; partitions start on consecutive brokers so
    leadership spreads evenly. With zones, brokers are interleaved zone by zone so consecutive replicas land in
    different zones whenever there are enough zones.
    """
    ids = sorted(brokers)
    if replication_factor > len(ids):
        raise MetadataConflict(f"replication factor {replication_factor} needs {replication_factor} brokers; "
                               f"{len(ids)} are registered")
    by_zone: dict[str, list[int]] = {}
    for broker_id in ids:
        by_zone.setdefault(str(brokers[broker_id].get("zone") or ""), []).append(broker_id)
    ordered: list[int] = []
    queues = [list(members) for _, members in sorted(by_zone.items())]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    assignment: dict[int, list[int]] = {}
    for index in partitions:
        start = index % len(ordered)
        assignment[index] = [ordered[(start + n) % len(ordered)] for n in range(replication_factor)]
    return assignment


# -- commands ----------------------------------------------------------------------------------------------------

def apply_command(state: MetadataState, command: cmds.Command) -> CommandResult:
    """Apply one command in place; returns its result or raises MetadataConflict (state unchanged then)."""
    result = _dispatch(state, command)
    state["applied"] = state.get("applied", 0) + 1
    return result


def writable_copy(state: MetadataState, command: cmds.Command) -> MetadataState:
    """A copy of `state` that `apply_command(copy, command)` may change while `state` stays as it is (published
    snapshots are never mutated). A command on one partition (leader election, ISR change, reassignment steps)
    copies that partition and the dicts above it and shares everything else (a completion's new replication factor
    and the throttle it may clear live in those copied dicts); any other command copies all. A whole copy for
    every partition change made a broker's failure, with a command per partition it held, quadratic in the
    partition count (7 ms per command at 1,000 partitions x RF 3, bench/scale.py; issue 18 item 6)."""
    if not (command["op"] == "elect_leader" or command["op"] == "change_isr" or command["op"] == "leave_isr"
            or command["op"] == "reassign" or command["op"] == "begin_reassignment"
            or command["op"] == "complete_reassignment" or command["op"] == "cancel_reassignment"):
        return copy.deepcopy(state)
    topic = state["topics"].get(command["topic"])
    partition = None if topic is None else topic["partition_state"].get(command["partition"])
    if topic is None or partition is None:
        return copy.deepcopy(state)  # refused by apply_command; nothing to share
    partitions = dict(topic["partition_state"])
    partitions[command["partition"]] = copy.deepcopy(partition)
    updated = state.copy()
    updated["topics"] = {**state["topics"], command["topic"]: {**topic, "partition_state": partitions}}
    return updated


def _dispatch(state: MetadataState, cmd: cmds.Command) -> CommandResult:  # noqa: PLR0912
    # One branch per command: `==` on the literal `op` narrows the union to that command's type.
    if cmd["op"] == "create_topic":
        return _create_topic(state, cmd)
    if cmd["op"] == "elect_leader":
        return _elect_leader(state, cmd)
    if cmd["op"] == "change_isr":
        return _change_isr(state, cmd)
    if cmd["op"] == "leave_isr":
        return _leave_isr(state, cmd)
    if cmd["op"] == "reassign":
        return _reassign(state, cmd)
    if cmd["op"] == "replace_storage":
        return _replace_storage(state, cmd)
    if cmd["op"] == "begin_reassignment":
        return _begin_reassignment(state, cmd)
    if cmd["op"] == "complete_reassignment":
        return _complete_reassignment(state, cmd)
    if cmd["op"] == "cancel_reassignment":
        return _cancel_reassignment(state, cmd)
    if cmd["op"] == "barrier":
        pass  # no change: once a broker sees its own barrier applied, every entry committed before it is applied
    elif cmd["op"] == "register_broker":
        _register_broker(state, cmd)
    elif cmd["op"] == "delete_topic":
        _delete_topic(state, cmd)
    elif cmd["op"] == "grow_partitions":
        _grow_partitions(state, cmd)
    elif cmd["op"] == "set_topic_config":
        _topic(state, cmd["name"])["config"] = cmd["config"]
    elif cmd["op"] == "set_group":
        _set_group(state, cmd)
    elif cmd["op"] == "set_replication_throttle":
        _set_replication_throttle(state, cmd["bytes_per_s"])
    elif cmd["op"] == "set_paused_all":
        state["paused_all"] = bool(cmd["paused"])
    elif cmd["op"] == "restore":
        _restore(state, cmd)
    elif cmd["op"] == "upsert_user":
        _upsert_user(state, cmd)
    elif cmd["op"] == "delete_user":
        _delete_user(state, cmd)
    elif cmd["op"] == "set_user_quotas":
        _set_user_quotas(state, cmd)
    elif cmd["op"] == "add_acl":
        _add_acl(state, cmd)
    elif cmd["op"] == "remove_acl":
        _remove_acl(state, cmd)
    else:  # a newer version's command, or none at all: refused, never half-applied
        raise MetadataConflict(f"unknown metadata command {_op_of(cmd)!r}")
    return None


def _op_of(command: object) -> object:
    return command.get("op") if isinstance(command, dict) else None


def _register_broker(state: MetadataState, cmd: cmds.RegisterBroker) -> None:
    entry: BrokerEntry = {"host": cmd["host"], "http_port": cmd["http_port"], "grpc_port": cmd["grpc_port"],
                          "raft_address": cmd["raft_address"], "zone": cmd["zone"]}
    if cmd.get("directory_id"):  # absent in commands journaled before volumes had an identity
        entry["directory_id"] = cmd["directory_id"]
    if "internal_port" in cmd:  # absent in commands journaled before the internal listener existed
        entry["internal_port"] = cmd["internal_port"]
    if cmd.get("internal_tls"):
        entry["internal_tls"] = True
    if "metadata_version" in cmd:
        entry["metadata_version"] = cmd["metadata_version"]
    state["brokers"][cmd["id"]] = entry


def _replace_storage(state: MetadataState, cmd: cmds.ReplaceStorage) -> list[str]:
    """A broker is back on another data volume (`storage/identity.py`): every copy it held is gone, so it leaves
    every ISR at once — leadership moves to another in-sync replica — and must fetch its way back in. Where it was
    the only in-sync replica nothing better exists; those partitions are returned for the broker to report."""
    broker = cmd["broker"]
    stranded: list[str] = []
    for name, topic in state["topics"].items():
        for index, partition in topic["partition_state"].items():
            if broker not in partition["isr"]:
                continue
            others = [b for b in partition["isr"] if b != broker]
            if not others:
                stranded.append(f"{name}/{index}")
                continue
            if partition["leader"] == broker:
                partition["leader"] = others[0]
                partition["leader_epoch"] += 1
            partition["isr"] = others
            partition["version"] += 1
    if broker in state["brokers"]:
        state["brokers"][broker]["directory_id"] = cmd["directory_id"]
    return stranded


def _create_topic(state: MetadataState, cmd: cmds.CreateTopic) -> TopicEntry:
    name = cmd["name"]
    if name in state["topics"]:
        raise MetadataConflict(f"topic {name!r} already exists")
    topic: TopicEntry = {
        "name": name, "partitions": len(cmd["assignment"]), "replication_factor": cmd["replication_factor"],
        "config": cmd["config"], "created_at_s": cmd["created_at_s"], "internal": cmd.get("internal", False),
        "partition_state": {int(p): _new_partition(replicas) for p, replicas in cmd["assignment"].items()},
    }
    state["topics"][name] = topic
    return topic


def _new_partition(replicas: list[int]) -> PartitionState:
    return {"replicas": list(replicas), "leader": replicas[0], "leader_epoch": 0, "isr": list(replicas),
            "version": 0}


def _delete_topic(state: MetadataState, cmd: cmds.DeleteTopic) -> None:
    if state["topics"].pop(cmd["name"], None) is None:
        raise MetadataConflict(f"topic {cmd['name']!r} does not exist")
    _drop_throttle_unless_moving(state)  # the topic may have held the last partitions still moving


def _grow_partitions(state: MetadataState, cmd: cmds.GrowPartitions) -> None:
    topic = _topic(state, cmd["name"])
    new = {int(p): replicas for p, replicas in cmd["assignment"].items()}
    if min(new) != topic["partitions"]:
        raise MetadataConflict(f"topic {cmd['name']!r} has {topic['partitions']} partitions; the new ones must "
                               "follow them")
    for index, replicas in new.items():
        topic["partition_state"][index] = _new_partition(replicas)
    topic["partitions"] += len(new)


def _elect_leader(state: MetadataState, cmd: cmds.ElectLeader) -> PartitionState:
    """New leader and epoch; CAS on the epoch the controller saw, and on the partition version when the command
    carries it (metadata version 2)."""
    partition = _partition(state, cmd["topic"], cmd["partition"])
    if partition["leader_epoch"] != cmd["expected_epoch"]:
        raise MetadataConflict(f"{cmd['topic']}/{cmd['partition']} is at epoch {partition['leader_epoch']}, "
                               f"not {cmd['expected_epoch']}")
    if "expected_version" in cmd and partition["version"] != cmd["expected_version"]:
        raise MetadataConflict(f"{cmd['topic']}/{cmd['partition']} changed since the election was planned "
                               f"(version {partition['version']}, not {cmd['expected_version']})")
    leader = cmd["leader"]
    if leader is not None and leader not in partition["replicas"]:
        raise MetadataConflict(f"broker {leader} is not a replica of {cmd['topic']}/{cmd['partition']}")
    partition["leader"] = leader
    partition["leader_epoch"] += 1
    partition["isr"] = list(cmd["isr"])
    partition["version"] += 1
    return partition


def _change_isr(state: MetadataState, cmd: cmds.ChangeIsr) -> PartitionState:
    """The partition leader shrinks or expands its ISR; CAS on leader epoch and version."""
    partition = _partition(state, cmd["topic"], cmd["partition"])
    if (partition["leader_epoch"], partition["version"]) != (cmd["leader_epoch"], cmd["expected_version"]):
        raise MetadataConflict(f"{cmd['topic']}/{cmd['partition']} changed (epoch {partition['leader_epoch']}, "
                               f"version {partition['version']})")
    if partition["leader"] not in cmd["isr"]:
        raise MetadataConflict("the leader must stay in its own ISR")
    partition["isr"] = list(cmd["isr"])
    partition["version"] += 1
    return partition


def _leave_isr(state: MetadataState, cmd: cmds.LeaveIsr) -> PartitionState:
    """A replica whose local copy was lost or quarantined (corruption) takes itself out of the ISR, so it can never
    be elected with incomplete data; leading, it hands leadership to another in-sync replica first."""
    partition = _partition(state, cmd["topic"], cmd["partition"])
    broker = cmd["broker"]
    if broker not in partition["isr"]:
        return partition
    others = [b for b in partition["isr"] if b != broker]
    if not others:
        raise MetadataConflict(f"broker {broker} is the only in-sync replica of {cmd['topic']}/{cmd['partition']}")
    if partition["leader"] == broker:
        partition["leader"] = others[0]
        partition["leader_epoch"] += 1
    partition["isr"] = others
    partition["version"] += 1
    return partition


def _reassign(state: MetadataState, cmd: cmds.Reassign) -> PartitionState:
    """New replica list (drain, rebalance): replicas leaving drop out of the ISR at once, new ones join it once
    caught up; the leader must stay among the replicas. CAS on the partition version.

    A reassignment that would take every in-sync replica away (an offline partition whose last in-sync copy is on
    a dead broker being drained) is refused: naming a new, empty replica in sync instead would let it be elected
    cleanly, and the surviving followers would truncate to its empty log. The partition keeps its in-sync replica
    until that broker is back, or an unclean election is chosen."""
    partition = _partition(state, cmd["topic"], cmd["partition"])
    if partition["version"] != cmd["expected_version"]:
        raise MetadataConflict(f"{cmd['topic']}/{cmd['partition']} changed (version {partition['version']})")
    if partition["leader"] is not None and partition["leader"] not in cmd["replicas"]:
        raise MetadataConflict("move leadership off a replica before reassigning it away")
    isr = [b for b in partition["isr"] if b in cmd["replicas"]]
    if not isr:
        raise MetadataConflict(f"{cmd['topic']}/{cmd['partition']}: every in-sync replica {partition['isr']} would "
                               "leave; it keeps them until one is back")
    partition["replicas"] = list(cmd["replicas"])
    partition["isr"] = isr
    partition["version"] += 1
    return partition


# -- reassignment (KIP-455): add the new replicas first, remove the old ones last ------------------------------

def _begin_reassignment(state: MetadataState, cmd: cmds.BeginReassignment) -> PartitionState:
    """The replica set becomes the original replicas plus the new ones (outside the ISR: they fetch from the leader
    and the leader's ISR upkeep adds them once caught up). Nothing leaves yet, so the ISR never shrinks here."""
    name, index, target = cmd["topic"], cmd["partition"], cmd["target"]
    partition = _partition(state, name, index)
    _check_version(partition, cmd["expected_version"], name, index)
    if "target_replicas" in partition:
        raise MetadataConflict(f"{name}/{index} is already moving to {partition['target_replicas']}; cancel it first")
    if not target or len(set(target)) != len(target):
        raise MetadataConflict(f"{name}/{index}: target replicas {target} must be distinct and not empty")
    unknown = [b for b in target if b not in state["brokers"]]
    if unknown:
        raise MetadataConflict(f"{name}/{index}: brokers {unknown} are not members of the cluster")
    if target == partition["replicas"]:
        raise MetadataConflict(f"{name}/{index} already has replicas {target}")
    original = partition["replicas"]
    adding = [b for b in target if b not in original]
    partition["target_replicas"] = list(target)
    partition["adding_replicas"] = adding
    partition["removing_replicas"] = [b for b in original if b not in target]
    partition["replicas"] = [*original, *adding]
    partition["version"] += 1
    return partition


def _complete_reassignment(state: MetadataState, cmd: cmds.CompleteReassignment) -> PartitionState:
    """Replicas := target, ISR := ISR ∩ target; only once every target replica is in sync and one of them leads, so
    the ISR keeps at least the target's size. The removed brokers delete their copy (their reconcile drops it)."""
    name, index = cmd["topic"], cmd["partition"]
    partition = _partition(state, name, index)
    _check_version(partition, cmd["expected_version"], name, index)
    target = partition.get("target_replicas")
    if target is None:
        raise MetadataConflict(f"{name}/{index} is not being reassigned")
    missing = [b for b in target if b not in partition["isr"]]
    if missing:
        raise MetadataConflict(f"{name}/{index}: target replicas {missing} are not in sync yet")
    if partition["leader"] is not None and partition["leader"] not in target:
        raise MetadataConflict(f"{name}/{index}: move leadership to a target replica before completing")
    partition["replicas"] = list(target)
    partition["isr"] = [b for b in partition["isr"] if b in target]
    partition["version"] += 1
    _end_reassignment(state, partition)
    topic = state["topics"][name]
    if all("target_replicas" not in p and len(p["replicas"]) == len(target) for p in topic["partition_state"].values()):
        topic["replication_factor"] = len(target)  # a replication-factor change is done once every partition's is
    return partition


def _cancel_reassignment(state: MetadataState, cmd: cmds.CancelReassignment) -> PartitionState:
    """Back to the original replicas, ISR := ISR ∩ original. A leader among the new replicas hands leadership back
    to the first original replica in sync (the controller re-elects if that one is not alive)."""
    name, index = cmd["topic"], cmd["partition"]
    partition = _partition(state, name, index)
    _check_version(partition, cmd["expected_version"], name, index)
    adding = partition.get("adding_replicas")
    if adding is None:
        raise MetadataConflict(f"{name}/{index} is not being reassigned")
    original = [b for b in partition["replicas"] if b not in adding]
    isr = [b for b in partition["isr"] if b in original]
    if not isr:
        raise MetadataConflict(f"{name}/{index}: none of the original replicas {original} is in sync; let the "
                               "reassignment complete instead")
    if partition["leader"] is not None and partition["leader"] not in original:
        partition["leader"] = isr[0]
        partition["leader_epoch"] += 1
    partition["replicas"] = original
    partition["isr"] = isr
    partition["version"] += 1
    _end_reassignment(state, partition)
    return partition


def _end_reassignment(state: MetadataState, partition: PartitionState) -> None:
    for key in ("target_replicas", "adding_replicas", "removing_replicas"):
        partition.pop(key, None)  # type: ignore[misc]  # NotRequired keys: removed when the move ends
    _drop_throttle_unless_moving(state)


def _drop_throttle_unless_moving(state: MetadataState) -> None:
    """The last reassignment takes its throttle with it (completed, cancelled, or its topic deleted or restored)."""
    moving = any("target_replicas" in p for t in state["topics"].values() for p in t["partition_state"].values())
    if not moving:
        state.pop("replication_throttle", None)


def _set_replication_throttle(state: MetadataState, bytes_per_s: int | None) -> None:
    if bytes_per_s is None:
        state.pop("replication_throttle", None)
    elif bytes_per_s <= 0:
        raise MetadataConflict(f"a replication throttle must be positive bytes/s, not {bytes_per_s}")
    else:
        state["replication_throttle"] = bytes_per_s


def _check_version(partition: PartitionState, expected: int, topic: str, index: int) -> None:
    if partition["version"] != expected:
        raise MetadataConflict(f"{topic}/{index} changed (version {partition['version']}, not {expected})")


def _set_group(state: MetadataState, cmd: cmds.SetGroup) -> None:
    group = state["groups"].setdefault(cmd["group"], {"coordinator": None, "paused": False})
    if "coordinator" in cmd:
        group["coordinator"] = cmd["coordinator"]
    if "paused" in cmd:
        group["paused"] = cmd["paused"]


def _restore(state: MetadataState, cmd: cmds.Restore) -> None:
    """Replace topics and groups from a metadata backup (brokers stay as registered)."""
    state["topics"] = copy.deepcopy(cmd["topics"])
    state["groups"] = copy.deepcopy(cmd["groups"])
    _drop_throttle_unless_moving(state)


def _upsert_user(state: MetadataState, cmd: cmds.UpsertUser) -> None:
    """A new password keeps the user's quotas (they are set apart: `set_user_quotas`)."""
    users = state.setdefault("users", {})
    credential = cmd["credential"]
    previous = users.get(cmd["name"])
    if previous is not None and "quotas" in previous and "quotas" not in credential:
        credential = {**credential, "quotas": previous["quotas"]}
    users[cmd["name"]] = credential


def _set_user_quotas(state: MetadataState, cmd: cmds.SetUserQuotas) -> None:
    entry = state.get("users", {}).get(cmd["name"])
    if entry is None:
        raise MetadataConflict(f"user {cmd['name']!r} does not exist")
    if cmd["quotas"]:
        entry["quotas"] = cmd["quotas"]
    else:
        entry.pop("quotas", None)


def _delete_user(state: MetadataState, cmd: cmds.DeleteUser) -> None:
    """The user's ACLs stay (as Kafka's do): a user created again under that name gets them back."""
    if state.get("users", {}).pop(cmd["name"], None) is None:
        raise MetadataConflict(f"user {cmd['name']!r} does not exist")


def _add_acl(state: MetadataState, cmd: cmds.AddAcl) -> None:
    acls = state.setdefault("acls", [])
    if cmd["acl"] in acls:
        raise MetadataConflict("this ACL exists already")
    acls.append(cmd["acl"])


def _remove_acl(state: MetadataState, cmd: cmds.RemoveAcl) -> None:
    acls = state.get("acls", [])
    if cmd["acl"] not in acls:
        raise MetadataConflict("no such ACL")
    acls.remove(cmd["acl"])


def _topic(state: MetadataState, name: str) -> TopicEntry:
    try:
        return state["topics"][name]
    except KeyError:
        raise MetadataConflict(f"topic {name!r} does not exist") from None


def _partition(state: MetadataState, topic: str, index: int) -> PartitionState:
    try:
        return _topic(state, topic)["partition_state"][index]
    except KeyError:
        raise MetadataConflict(f"{topic}/{index} does not exist") from None


# -- queries (pure) ----------------------------------------------------------------------------------------------

def choose_new_leader(partition: PartitionView, alive: set[int], unclean: bool = False) -> int | None:
    """The preferred live in-sync replica; an out-of-sync one only when unclean election is enabled."""
    for broker_id in partition["replicas"]:
        if broker_id in alive and broker_id in partition["isr"]:
            return broker_id
    if unclean:
        for broker_id in partition["replicas"]:
            if broker_id in alive:
                return broker_id
    return None


def restart_would_break(state: StateView, broker_id: int, min_insync: Mapping[str, int], quorum_alive: int,
                        quorum_size: int) -> list[str]:
    """Why restarting `broker_id` now is unsafe (empty: safe): partitions that would fall below
    min.insync.replicas or go offline, and a metadata quorum that would be lost."""
    reasons = []
    if quorum_alive - 1 < quorum_size // 2 + 1:
        reasons.append(f"metadata quorum: {quorum_alive}/{quorum_size} brokers up, restarting one loses quorum")
    for name, topic in state["topics"].items():
        needed = min_insync.get(name, 1)
        for index, partition in topic["partition_state"].items():
            isr = partition["isr"]
            if broker_id in isr and len(isr) - 1 < needed:
                reasons.append(f"{name}/{index}: ISR {isr} would fall below min.insync.replicas {needed}")
    return reasons
