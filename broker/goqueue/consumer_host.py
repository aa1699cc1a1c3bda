"""`BrokerConsumerHost`: the consumer-group port (`goqueue.consumers.port.ConsumerHost`) over today's `Broker`.

The one place that knows both sides: a thin mapping of each port member onto the broker, its topic registry, its
cluster membership and its partition replicas. Nothing here decides anything; when the broker core moves, only this
file follows it. The coordinator's own calls are never "forwarded" ones: its produce, fetch and offsets reach a
partition's leader wherever it is (one hop), and its state writes use `Broker.append_local` (this leader epoch only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry

from goqueue.broker import Broker
from goqueue.consumers.offsets import PartitionBounds
from goqueue.consumers.port import (
    Fetched,
    Leadership,
    OutgoingRecord,
    PeerCalls,
    RoleChange,
    TopicFacts,
)
from goqueue.models import TopicCreate
from goqueue.records import RecordIn
from goqueue.replicas.partition import Partition
from goqueue.replication import commands


class _Replica:
    """`port.LocalReplica` over a `Partition` this broker holds."""

    __slots__ = ("_partition",)

    def __init__(self, partition: Partition) -> None:
        self._partition = partition

    @property
    def is_leader(self) -> bool:
        return self._partition.is_leader

    @property
    def leader_epoch(self) -> int:
        return self._partition.leader_epoch

    @property
    def log_start_offset(self) -> int:
        return self._partition.log.log_start_offset

    @property
    def high_watermark(self) -> int:
        return self._partition.log.high_watermark

    @property
    def log_end_offset(self) -> int:
        return self._partition.log.log_end_offset

    def read(self, offset: int, max_bytes: int, upto: int | None = None) -> bytes:
        return self._partition.log.read(offset, max_bytes, upto=upto)

    def changed(self) -> asyncio.Event:
        return self._partition.grown  # replaced at every notify: this is the one the next change sets


def _role(partition: Partition) -> RoleChange:
    return RoleChange(partition.topic, partition.index, partition.is_leader, partition.leader_epoch)


def _records_in(records: Sequence[OutgoingRecord]) -> list[RecordIn]:
    return [RecordIn(r.key, r.value, r.headers, None, r.timestamp_ms) for r in records]


class BrokerConsumerHost:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._relays: dict[Callable[[RoleChange], None], Callable[[Partition], None]] = {}

    # -- ClusterView -----------------------------------------------------------------------------------------

    @property
    def broker_id(self) -> int:
        return self._broker.broker_id

    @property
    def cluster_size(self) -> int:
        return max(1, len(self._broker.settings.cluster.peers))  # no peers configured: a broker alone

    def partition_leaders(self, topic: str) -> Mapping[int, Leadership]:
        entry = self._broker.membership.view.topic(topic)
        states = entry["partition_state"] if entry else {}
        return {int(index): Leadership(state["leader"], state["leader_epoch"]) for index, state in states.items()}

    @property
    def paused_all(self) -> bool:
        return self._broker.membership.view.paused_all

    async def set_paused_all(self, paused: bool) -> None:
        await self._broker.membership.propose(commands.set_paused_all(paused))

    # -- TopicLookup -----------------------------------------------------------------------------------------

    def topics(self) -> Mapping[str, TopicFacts]:
        return self._broker.registry.topics

    def topic(self, name: str) -> TopicFacts:
        return self._broker.registry.get(name)

    async def create_topic(self, spec: TopicCreate, *, internal: bool = False) -> None:
        await self._broker.create_topic(spec, internal=internal)

    async def update_topic(self, name: str, partitions: int | None, config: dict[str, object] | None) -> None:
        await self._broker.update_topic(name, partitions, config)

    # -- Records ---------------------------------------------------------------------------------------------

    @property
    def max_fetch_bytes(self) -> int:
        return self._broker.settings.limits.max_fetch_bytes

    @property
    def max_wait_s(self) -> float:
        return self._broker.settings.limits.max_wait_s

    async def produce(self, topic: str, records: Sequence[OutgoingRecord]) -> None:
        await self._broker.produce(topic, _records_in(records))

    async def fetch(self, topic: str, index: int, offset: int, max_bytes: int) -> Fetched:
        return await self._broker.fetch(topic, index, offset, max_bytes)

    async def offsets(self, topic: str, index: int, timestamp_ms: int | None = None) -> PartitionBounds:
        found = await self._broker.partition_offsets_routed(topic, index, timestamp_ms)
        return PartitionBounds(int(found["earliest"] or 0), int(found["latest"] or 0), found["forTimestamp"])

    # -- StatePartitions -------------------------------------------------------------------------------------

    async def append_local(self, topic: str, index: int, leader_epoch: int, records: Sequence[OutgoingRecord]) -> int:
        return await self._broker.append_local(topic, index, leader_epoch, _records_in(records))

    def local_replica(self, topic: str, index: int) -> _Replica | None:
        partition = self._broker.replicas.partitions.get((topic, index))
        return None if partition is None else _Replica(partition)

    def roles(self, topic: str) -> list[RoleChange]:
        return [_role(p) for (t, _), p in list(self._broker.replicas.partitions.items()) if t == topic]

    def subscribe_roles(self, listener: Callable[[RoleChange], None]) -> None:
        def relay(partition: Partition) -> None:
            listener(_role(partition))

        self._relays[listener] = relay
        self._broker.replicas.role_listeners.append(relay)

    def unsubscribe_roles(self, listener: Callable[[RoleChange], None]) -> None:
        relay = self._relays.pop(listener, None)
        if relay is not None:
            self._broker.replicas.role_listeners.remove(relay)

    # -- Peers -----------------------------------------------------------------------------------------------

    @property
    def peers(self) -> PeerCalls:
        return self._broker.membership.peers

    def broker_url(self, broker_id: int) -> str:
        return self._broker.membership.broker_url(broker_id)

    # -- ConsumerHost ----------------------------------------------------------------------------------------

    @property
    def metrics_registry(self) -> CollectorRegistry:
        return self._broker.metrics.registry
