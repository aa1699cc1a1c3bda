"""Consumer state on disk: the internal compacted topic `__consumer_state`, written and replayed like any topic.

Why a topic and not a side file: it goes through the normal produce path (acks=all, fsync per group commit), so
it is exactly as durable as the records it describes, and the clustering layer replicates it with the partitions
(a new partition leader inherits the groups of the old one) — Kafka's `__consumer_offsets` design.

Record format: key and value are UTF-8; values are compact JSON; a tombstone (value None) deletes the key, and
compaction keeps only the newest record per key. A group's records all live in partition
`crc32c(group) % partitions`, so they stay in order, and the leader of that partition coordinates the group
(`ownership.py`). Segments are small (`consumers.stateSegmentBytes`) so compaction keeps the replay of a new
coordinator short.

    key                                  value
    group:<group>                        {"mode", "config", "topics", "paused", "generation", "members": [...]}
    offset:<group>:<topic>:<partition>   {"c": committed, "n": next, "e": reset epoch}
    lease:<group>:<topic>:<partition>:<offset>
                                         {"d": deliveries, "s": "l"|"w", "x": deadline ms, "c": consumer, "r": reason}
    global:paused                        legacy: the pause-all flag now lives in the cluster metadata; ignored

Group, topic and partition names contain no ':' (topic and group names are [a-zA-Z0-9._-]), so keys split cleanly.
An acked lease is a tombstone; lease records below their cursor's committed offset are ignored on replay.
Lease expiry is not written: a lease read back with a past deadline simply expires again at the first tick.

Who calls it: the coordinator, on the event loop; `write` returns once the records are durable, and only ever
appends to a partition this broker leads at the epoch its groups were loaded for (`StatePartitions.append_local`);
`read_local` replays a partition from this broker's own replica when it becomes the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from goqueue.consumers.assignment import TP
from goqueue.consumers.groups import Group, Member
from goqueue.consumers.leases import Cursor, Slot, SlotState
from goqueue.consumers.ownership import state_partition_for
from goqueue.consumers.port import ClusterView, LocalReplica, OutgoingRecord, StatePartitions, TopicLookup
from goqueue.errors import (
    InvalidConfig,
    InvalidRequest,
    NotCoordinator,
    NotLeader,
    NotReady,
    Timeout,
    TopicAlreadyExists,
)
from goqueue.models import CleanupPolicy, GroupConfig, GroupMode, TopicConfig, TopicCreate, load_stored
from goqueue.storage import batch as batches

log = logging.getLogger(__name__)

ENSURE_TOPIC_TIMEOUT_S = 120.0

STATE_TOPIC = "__consumer_state"
INTERNAL_PREFIX = "__"
GLOBAL_PAUSED = "global:paused"
READ_CHUNK_BYTES = 4 * 2**20
COMMIT_POLL_S = 0.5  # a loading coordinator re-checks its leadership this often while waiting for the hwm

StateRecord = tuple[str, dict[str, Any] | None]


@dataclass
class Changes:
    """Keys an operation touched; the coordinator writes their current values (missing ones as tombstones)."""

    group: bool = False
    cursors: set[TP] = field(default_factory=set)
    slots: set[tuple[TP, int]] = field(default_factory=set)


def is_internal(topic: str) -> bool:
    return topic.startswith(INTERNAL_PREFIX)


def refuse_internal_write(topic: str) -> None:
    """Only the broker writes its internal topics (a stray record in __consumer_state would corrupt offsets);
    every produce door (HTTP JSON and binary, gRPC unary and streaming) calls this."""
    if is_internal(topic):
        raise InvalidRequest(f"{topic!r} is an internal topic; only the broker writes it")


# -- encoding ------------------------------------------------------------------------------------------------

def group_key(group: str) -> str:
    return f"group:{group}"


def offset_key(group: str, tp: TP) -> str:
    return f"offset:{group}:{tp[0]}:{tp[1]}"


def lease_key(group: str, tp: TP, offset: int) -> str:
    return f"lease:{group}:{tp[0]}:{tp[1]}:{offset}"


def group_record(group: Group) -> StateRecord:
    members = [{"id": m.member_id, "client": m.client_id, "host": m.host, "topics": list(m.topics),
                "gen": m.generation, "tps": [list(tp) for tp in m.assignment]}
               for m in group.members.values()] if group.mode is GroupMode.ORDERED else []
    return group_key(group.name), {
        "mode": group.mode.value, "config": group.config.model_dump(mode="json", by_alias=True, exclude_none=True),
        "topics": sorted(group.topics), "paused": group.paused, "generation": group.generation, "members": members}


def cursor_record(group: str, tp: TP, cursor: Cursor) -> StateRecord:
    return offset_key(group, tp), {"c": cursor.committed, "n": cursor.next, "e": cursor.epoch}


def slot_record(group: str, tp: TP, slot: Slot) -> StateRecord:
    value: dict[str, Any] = {"d": slot.deliveries, "s": slot.state.value, "x": slot.deadline_ms}
    if slot.consumer is not None:
        value["c"] = slot.consumer
    if slot.reason is not None:
        value["r"] = slot.reason
    return lease_key(group, tp, slot.offset), value


def slot_tombstone(group: str, tp: TP, offset: int) -> StateRecord:
    return lease_key(group, tp, offset), None


def group_tombstones(group: Group) -> list[StateRecord]:
    """Everything a deleted group leaves behind."""
    records: list[StateRecord] = []
    for tp, cursor in group.cursors.items():
        records.extend(slot_tombstone(group.name, tp, offset) for offset in cursor.slots)
        records.append((offset_key(group.name, tp), None))
    records.append((group_key(group.name), None))
    return records


# -- replay --------------------------------------------------------------------------------------------------

@dataclass
class _Raw:
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    cursors: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    slots: dict[tuple[str, str, int, int], dict[str, Any]] = field(default_factory=dict)
    all_paused: bool = False


def apply_record(raw: _Raw, key: str, value: dict[str, Any] | None) -> None:
    kind, _, rest = key.partition(":")
    if kind == "group":
        _put(raw.groups, rest, value)
    elif kind == "offset":
        group, topic, partition = rest.split(":")
        _put(raw.cursors, (group, topic, int(partition)), value)
    elif kind == "lease":
        group, topic, partition, offset = rest.split(":")
        _put(raw.slots, (group, topic, int(partition), int(offset)), value)
    elif key == GLOBAL_PAUSED:
        raw.all_paused = bool(value and value.get("paused"))
    else:
        log.warning("consumer_state.unknown_key", extra={"key": key})


def _put(table: dict[Any, dict[str, Any]], key: Any, value: dict[str, Any] | None) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def build_state(raw: _Raw, now_s: float) -> dict[str, Group]:
    """Groups from the newest record of every key; members get a fresh session from `now_s`."""
    groups: dict[str, Group] = {}
    for name, value in raw.groups.items():
        # Read tolerantly: a newer broker may have written a setting this one lacks (ignored), an older one a value
        # out of today's range (clamped and logged), so no consume of the group fails on it.
        config, fixed = load_stored(GroupConfig, value["config"])
        for fix in fixed:
            log.warning("group.stored_setting_out_of_range", extra={
                "group": name, "setting": fix.field, "stored": repr(fix.stored), "loaded": repr(fix.loaded),
                "fix": "declare the group again with a valid value"})
        group = Group(name=name, mode=GroupMode(value["mode"]), config=config,
                      topics=set(value.get("topics", [])), paused=bool(value.get("paused")),
                      generation=int(value.get("generation", 0)))
        for m in value.get("members", []):
            group.members[m["id"]] = Member(m["id"], m["client"], m["host"], tuple(m["topics"]), now_s,
                                            int(m["gen"]), [(t, int(p)) for t, p in m["tps"]])
        groups[name] = group
    for (name, topic, partition), value in raw.cursors.items():
        if name in groups:
            groups[name].cursors[(topic, partition)] = Cursor(
                committed=int(value["c"]), next=int(value["n"]), epoch=int(value.get("e", 0)))
    for (name, topic, partition, offset), value in raw.slots.items():
        cursor = groups[name].cursors.get((topic, partition)) if name in groups else None
        if cursor is not None:
            cursor.restore_slot(Slot(offset, int(value["d"]), SlotState(value["s"]), int(value["x"]),
                                     value.get("c"), value.get("r")))
    for group in groups.values():
        for cursor in group.cursors.values():
            cursor.finish_restore()
    return groups


# -- the topic -----------------------------------------------------------------------------------------------

class StateTopicHost(TopicLookup, StatePartitions, ClusterView, Protocol):
    """What the state topic needs of its host: topic lookup and creation, the fenced append, the cluster size."""


class StateStore:
    def __init__(self, host: StateTopicHost, partitions: int, segment_bytes: int) -> None:
        self.host = host
        self.wanted_partitions = partitions
        self.segment_bytes = segment_bytes

    @property
    def partitions(self) -> int:
        return self.host.topic(STATE_TOPIC).partitions

    def _config(self) -> TopicConfig:
        return TopicConfig(cleanup_policy=CleanupPolicy.COMPACT, segment_bytes=self.segment_bytes)

    async def ensure_topic(self) -> None:
        """Create the state topic once per cluster, replicated like user data (up to 3 copies).

        Every broker of a new cluster races to create it: the losers see TOPIC_ALREADY_EXISTS, and a broker that
        tries before its peers registered retries until they have. A topic made before `stateSegmentBytes`
        existed (or with another value) gets the configured segment size: every broker proposes the same value,
        so the race is harmless.
        """
        replication_factor = min(3, max(1, self.host.cluster_size))
        deadline = time.monotonic() + ENSURE_TOPIC_TIMEOUT_S
        while STATE_TOPIC not in self.host.topics():
            try:
                await self.host.create_topic(TopicCreate(
                    name=STATE_TOPIC, partitions=self.wanted_partitions, replication_factor=replication_factor,
                    config=self._config()), internal=True)
                log.info("consumer_state.created", extra={"topic": STATE_TOPIC, "partitions": self.wanted_partitions,
                                                          "replication_factor": replication_factor})
            except TopicAlreadyExists:
                break
            except (InvalidConfig, NotReady, Timeout) as exc:  # peers not registered yet, or no metadata leader
                if time.monotonic() > deadline:
                    raise
                log.info("consumer_state.create_retry", extra={"reason": str(exc)})
                await asyncio.sleep(0.5)
        if self.host.topic(STATE_TOPIC).config.segment_bytes != self.segment_bytes:
            await self.host.update_topic(STATE_TOPIC, None, {"segmentBytes": self.segment_bytes})

    def partition_for(self, group: str) -> int:
        return state_partition_for(group, self.partitions)

    async def write(self, partition: int, leader_epoch: int, records: Sequence[StateRecord]) -> None:
        """Append to a state partition this broker leads at `leader_epoch`, and wait until durable (acks=all):
        callers answer their client only after this returns.

        Fenced: a coordinator whose leadership moved gets NOT_COORDINATOR, and the write is never forwarded to the
        new leader (its successor owns that log now): the host's `append_local` appends only at this leader epoch.
        """
        if not records:
            return
        encoded = [OutgoingRecord(key.encode(), None if value is None else
                                  json.dumps(value, separators=(",", ":")).encode(), []) for key, value in records]
        try:
            await self.host.append_local(STATE_TOPIC, partition, leader_epoch, encoded)
        except NotLeader as exc:
            raise NotCoordinator(f"this broker no longer leads {STATE_TOPIC}/{partition} at epoch {leader_epoch}; "
                                 f"retry: the group's new coordinator serves it ({exc.message})") from exc


# -- replay --------------------------------------------------------------------------------------------------

async def read_local(replica: LocalReplica, index: int,
                     is_current: Callable[[], bool]) -> list[tuple[str, dict[str, Any] | None]]:
    """Every state record of state partition `index`, which this broker leads, read from its own replica.

    It first waits until the high watermark reaches the log end offset it found: a new leader's log may end in
    records of the previous epoch not yet confirmed by the in-sync replicas, and a coordinator serves only
    committed state. A broker that restarted starts from its checkpointed high watermark (storage/log.py), not its
    log end, so this wait is real after a restart too: the records past the checkpoint count once the in-sync
    replicas have fetched them (or the lagging ones left the ISR). `is_current` says whether the load is still
    wanted (leadership may move meanwhile).
    """
    end = replica.log_end_offset
    while replica.high_watermark < end:
        changed = replica.changed()
        if not is_current():
            raise NotCoordinator(f"{STATE_TOPIC}/{index} changed leader while loading")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(COMMIT_POLL_S):  # not wait_for: see replication/raft.py
                await changed.wait()
    found: list[tuple[str, dict[str, Any] | None]] = []
    offset = replica.log_start_offset
    while offset < end:
        if not is_current():
            raise NotCoordinator(f"{STATE_TOPIC}/{index} changed leader while loading")
        data = replica.read(offset, READ_CHUNK_BYTES, upto=end)
        if not data:
            break
        for pos, header in batches.iter_headers(data):
            for record in batches.decode_records(data, pos):
                if offset <= record.offset < end and record.key is not None:
                    found.append((record.key.decode(), None if record.value is None else json.loads(record.value)))
            offset = max(offset, header.next_offset)
        await asyncio.sleep(0)  # a long replay shares the event loop with the broker's other work
    return found


def replay(records: Iterable[tuple[str, dict[str, Any] | None]], now_s: float) -> dict[str, Group]:
    raw = _Raw()
    for key, value in records:
        apply_record(raw, key, value)
    return build_state(raw, now_s)
