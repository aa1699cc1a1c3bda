"""An in-memory `ConsumerHost` (goqueue/consumers/port.py): the consumer-group code's whole world, with no broker.

Why a double: the coordinator needs a broker only through its port, so its unit tests need no `Broker`, no Raft, no
socket and no disk. What the real host does is kept where the coordinator can tell: every partition is a replica
held here whose log is a list of real record batches (stamped with base offset and leader epoch, so the
coordinator's reader decodes them as it decodes a fetch); a produce or a local append is committed at once (the
high watermark moves to the log end, as a leader alone in its ISR does); `append_local` is fenced exactly like
`Broker.append_local` (NOT_LEADER unless this broker leads the partition at that epoch, also when the epoch moves
during the write); offsets and fetch answer like a partition's leader (OFFSET_OUT_OF_RANGE outside the log, at
least one whole batch, nothing at or above the high watermark).

What a test controls by hand: `become` moves a partition's leadership (the metadata's leader and epoch, this
broker's replica's role) and tells the subscribed role listeners, as `Broker.reconcile` does; a replica's
`high_watermark` can be set back (a new leader whose followers have not fetched yet) or its `log_start_offset`
forward (retention); `restarted` is the same cluster seen by a broker process started again (same logs and
metadata, a fresh metrics registry and no listeners). There is one broker: `peers` refuses every call.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from goqueue.config import LimitsSection
from goqueue.consumers.offsets import PartitionBounds
from goqueue.consumers.port import Leadership, OutgoingRecord, RoleChange
from goqueue.errors import (
    NotLeader,
    OffsetOutOfRange,
    PartitionNotFound,
    TopicAlreadyExists,
    TopicNotFound,
)
from goqueue.models import TopicConfig, TopicCreate
from goqueue.partitioning import partition_for_key
from goqueue.storage import batch as batches
from goqueue.storage.batch import Record


@dataclass
class DoubleTopic:
    name: str
    partitions: int
    replication_factor: int
    config: TopicConfig


@dataclass(frozen=True)
class Fetched:
    data: bytes
    high_watermark: int


class DoubleReplica:
    """This broker's replica of one partition: a list of stamped batches (`port.LocalReplica`)."""

    def __init__(self, topic: str, index: int, leader_epoch: int = 0) -> None:
        self.topic = topic
        self.index = index
        self.batches: list[tuple[int, int, bytes]] = []  # (base offset, next offset, batch)
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.high_watermark = 0
        self.is_leader = True
        self.leader_epoch = leader_epoch
        self._changed = asyncio.Event()

    def changed(self) -> asyncio.Event:
        return self._changed

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def append(self, records: Sequence[OutgoingRecord], now_ms: int) -> int:
        """Append one batch at the log end and commit it (hwm = log end); returns its base offset."""
        timestamps = None if all(r.timestamp_ms is None for r in records) else [
            r.timestamp_ms if r.timestamp_ms is not None else now_ms for r in records]
        batch = batches.build_batch([(r.key, r.value, r.headers) for r in records], now_ms, timestamps_ms=timestamps)
        base = self.log_end_offset
        batches.stamp(batch, base, self.leader_epoch)
        self.batches.append((base, base + len(records), bytes(batch)))
        self.log_end_offset = base + len(records)
        self.high_watermark = self.log_end_offset
        self.notify()
        return base

    def read(self, offset: int, max_bytes: int, upto: int | None = None) -> bytes:
        """As `PartitionLog.read`: whole batches from the one holding `offset`, below `upto` (default: the high
        watermark), at least one."""
        limit = self.high_watermark if upto is None else upto
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRange(f"offset {offset} is outside the log [{self.log_start_offset}, "
                                   f"{self.log_end_offset}]", log_start_offset=self.log_start_offset,
                                   log_end_offset=self.log_end_offset)
        if offset >= limit:
            return b""
        chunks: list[bytes] = []
        budget = max_bytes
        for base, next_offset, batch in self.batches:
            if next_offset <= offset or next_offset <= self.log_start_offset:
                continue
            if base >= limit or (chunks and budget < len(batch)):
                break
            chunks.append(batch)
            budget -= len(batch)
        return b"".join(chunks)

    def offset_for_timestamp(self, timestamp_ms: int) -> int:
        """As `PartitionLog.offset_for_timestamp`: the first batch whose newest timestamp is at or after it."""
        for base, next_offset, batch in self.batches:
            if next_offset > self.log_start_offset and batches.read_header(batch).max_timestamp_ms >= timestamp_ms:
                return max(base, self.log_start_offset)
        return self.log_end_offset

    def records(self) -> list[Record]:
        """Every record of the log (retention aside), decoded."""
        out: list[Record] = []
        for _, _, batch in self.batches:
            out.extend(batches.decode_records(batch))
        return out


class NoPeers:
    async def call_json(self, method: str, url: str, **kwargs: Any) -> Any:
        raise AssertionError(f"the one-broker double has no peer to call: {method} {url}")


@dataclass
class _Cluster:
    """What a broker restart keeps: topics, replicas, leaderships, the pause-all flag."""

    topics: dict[str, DoubleTopic] = field(default_factory=dict)
    replicas: dict[tuple[str, int], DoubleReplica] = field(default_factory=dict)
    leaders: dict[tuple[str, int], Leadership] = field(default_factory=dict)
    paused_all: bool = False


class ConsumerHostDouble:
    """`goqueue.consumers.port.ConsumerHost` in memory, for one broker (id `broker_id`)."""

    def __init__(self, clock: Callable[[], float] = time.time, broker_id: int = 0,
                 _cluster: _Cluster | None = None) -> None:
        self.clock = clock
        self.broker_id = broker_id
        self.cluster_size = 1
        limits = LimitsSection()
        self.max_fetch_bytes = limits.max_fetch_bytes
        self.max_wait_s = limits.max_wait_s
        self.metrics_registry = CollectorRegistry()
        self.peers = NoPeers()
        self._cluster = _cluster or _Cluster()
        self._listeners: list[Callable[[RoleChange], None]] = []
        self._round_robin: dict[str, Iterator[int]] = {}

    def restarted(self) -> ConsumerHostDouble:
        """The same cluster as a broker process started again sees it."""
        return ConsumerHostDouble(self.clock, self.broker_id, self._cluster)

    # -- test controls ---------------------------------------------------------------------------------------

    @property
    def replicas(self) -> dict[tuple[str, int], DoubleReplica]:
        return self._cluster.replicas

    def become(self, topic: str, index: int, *, leader: int | None, epoch: int) -> None:
        """The metadata moves the partition's leadership; this broker's replica takes its role and the role
        listeners are told (as `Broker.reconcile` does)."""
        self._cluster.leaders[(topic, index)] = Leadership(leader, epoch)
        replica = self._cluster.replicas[(topic, index)]
        replica.is_leader = leader == self.broker_id
        replica.leader_epoch = epoch
        if replica.is_leader:
            replica.high_watermark = replica.log_end_offset  # alone in its ISR: everything is committed
        replica.notify()
        self._tell(replica)

    def records(self, topic: str) -> list[Record]:
        """Every record of every partition of the topic."""
        return [r for p in range(self.topic(topic).partitions) for r in self._cluster.replicas[(topic, p)].records()]

    def _tell(self, replica: DoubleReplica) -> None:
        change = RoleChange(replica.topic, replica.index, replica.is_leader, replica.leader_epoch)
        for listener in list(self._listeners):
            listener(change)

    # -- ClusterView -----------------------------------------------------------------------------------------

    def partition_leaders(self, topic: str) -> Mapping[int, Leadership]:
        return {index: leadership for (t, index), leadership in self._cluster.leaders.items() if t == topic}

    @property
    def paused_all(self) -> bool:
        return self._cluster.paused_all

    async def set_paused_all(self, paused: bool) -> None:
        self._cluster.paused_all = paused
        await asyncio.sleep(0)  # a metadata command answers later

    # -- TopicLookup -----------------------------------------------------------------------------------------

    def topics(self) -> Mapping[str, DoubleTopic]:
        return self._cluster.topics

    def topic(self, name: str) -> DoubleTopic:
        try:
            return self._cluster.topics[name]
        except KeyError:
            raise TopicNotFound(f"topic {name!r} does not exist", topic=name) from None

    async def create_topic(self, spec: TopicCreate, *, internal: bool = False) -> None:
        del internal  # the double trusts its caller with names
        if spec.name in self._cluster.topics:
            raise TopicAlreadyExists(f"topic {spec.name!r} already exists", topic=spec.name)
        self._cluster.topics[spec.name] = DoubleTopic(spec.name, spec.partitions, spec.replication_factor,
                                                      spec.config)
        self._add_partitions(spec.name, range(spec.partitions))
        await asyncio.sleep(0)

    async def update_topic(self, name: str, partitions: int | None, config: dict[str, object] | None) -> None:
        topic = self.topic(name)
        if config:
            topic.config = TopicConfig.model_validate(
                {**topic.config.model_dump(by_alias=True, exclude_none=True), **config})
        if partitions is not None and partitions > topic.partitions:
            self._add_partitions(name, range(topic.partitions, partitions))
            topic.partitions = partitions
        await asyncio.sleep(0)

    def _add_partitions(self, topic: str, indexes: range) -> None:
        for index in indexes:
            replica = self._cluster.replicas[(topic, index)] = DoubleReplica(topic, index)
            self._cluster.leaders[(topic, index)] = Leadership(self.broker_id, replica.leader_epoch)
            self._tell(replica)

    # -- Records ---------------------------------------------------------------------------------------------

    async def produce(self, topic: str, records: Sequence[OutgoingRecord], *, partition: int | None = None) -> None:
        meta = self.topic(topic)
        grouped: dict[int, list[OutgoingRecord]] = {}
        for record in records:
            index = partition if partition is not None else self._choose(meta, record.key)
            grouped.setdefault(index, []).append(record)
        now_ms = int(self.clock() * 1000)
        for index, chosen in grouped.items():
            replica = self._leader(topic, index)
            replica.append(chosen, now_ms)
        await asyncio.sleep(0)

    def _choose(self, meta: DoubleTopic, key: bytes | None) -> int:
        if key is not None:
            return partition_for_key(key, meta.partitions)
        cycle = self._round_robin.setdefault(meta.name, itertools.cycle(range(meta.partitions)))
        return next(cycle) % meta.partitions

    def _leader(self, topic: str, index: int) -> DoubleReplica:
        meta = self.topic(topic)
        if not 0 <= index < meta.partitions:
            raise PartitionNotFound(f"topic {topic!r} has partitions 0..{meta.partitions - 1}, not {index}",
                                    topic=topic, partition=index)
        return self._cluster.replicas[(topic, index)]

    async def fetch(self, topic: str, index: int, offset: int, max_bytes: int) -> Fetched:
        replica = self._leader(topic, index)
        await asyncio.sleep(0)
        return Fetched(replica.read(offset, max(1, min(max_bytes, self.max_fetch_bytes))), replica.high_watermark)

    async def offsets(self, topic: str, index: int, timestamp_ms: int | None = None) -> PartitionBounds:
        replica = self._leader(topic, index)
        await asyncio.sleep(0)
        found = replica.offset_for_timestamp(timestamp_ms) if timestamp_ms is not None else None
        return PartitionBounds(replica.log_start_offset, replica.high_watermark, found)

    # -- StatePartitions -------------------------------------------------------------------------------------

    async def append_local(self, topic: str, index: int, leader_epoch: int, records: Sequence[OutgoingRecord]) -> int:
        replica = self._cluster.replicas.get((topic, index))
        if replica is None or not replica.is_leader or replica.leader_epoch != leader_epoch:
            raise NotLeader(f"this broker no longer leads {topic}/{index} at epoch {leader_epoch}")
        base = replica.append(records, int(self.clock() * 1000))
        await asyncio.sleep(0)  # the write and its replication take a while: leadership may move meanwhile
        if replica.leader_epoch != leader_epoch:
            raise NotLeader(f"{topic}/{index} changed leader epoch during the write; it may or may not be committed")
        return base

    def local_replica(self, topic: str, index: int) -> DoubleReplica | None:
        return self._cluster.replicas.get((topic, index))

    def roles(self, topic: str) -> list[RoleChange]:
        return [RoleChange(t, i, r.is_leader, r.leader_epoch) for (t, i), r in self._cluster.replicas.items()
                if t == topic]

    def subscribe_roles(self, listener: Callable[[RoleChange], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe_roles(self, listener: Callable[[RoleChange], None]) -> None:
        self._listeners.remove(listener)

    # -- Peers -----------------------------------------------------------------------------------------------

    def broker_url(self, broker_id: int) -> str:
        return f"http://broker-{broker_id}.invalid:8080"
