"""The broker's client-facing operations — topic admin, routing, produce, fetch, offsets — shared by HTTP and
gRPC: a facade over the broker's parts, which `server.compose_broker` builds and wires.

* `storage.log_manager.LogManager` — the partition logs on this broker's volume, retention, compaction;
* `replicas.ReplicaManager` — the replicas held here following the metadata, the local write path, serving and
  fetching replication;
* `cluster.membership.ClusterMembership` — metadata Raft, liveness, the controller; `cluster.admin.ClusterAdmin`
  the operator's admin questions; `cluster.topics.TopicRegistry` the typed view of the topics.

API adapters call `Broker` with decoded values and get domain results or `GoQueueError`s; it knows nothing of HTTP
or protobuf. Any broker serves any request: produce and fetch for a partition led elsewhere are forwarded to its
leader (`replication/peers.py`) — once: a request another broker forwarded (`forwarded=True`, which the adapters
pass explicitly) is answered NOT_LEADER instead of being forwarded again. Topic changes are metadata commands
proposed to Raft; every broker's `ReplicaManager` then reconciles its local replicas with the new metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import Metric

from goqueue.cluster.admin import ClusterAdmin
from goqueue.cluster.membership import ClusterMembership
from goqueue.cluster.topics import TopicMeta, TopicRegistry
from goqueue.config import Settings
from goqueue.errors import (
    GoQueueError,
    InvalidConfig,
    InvalidRequest,
    InvalidTopicName,
    NotLeader,
    NotReady,
    PartitionNotFound,
    PartitionOffline,
    PartitionsCannotShrink,
    RecordTooLarge,
    TopicAlreadyExists,
    TopicNotFound,
)
from goqueue.metrics import BrokerMetrics, QuotaMetrics, gauge, register_state_collector
from goqueue.models import (
    Acks,
    CleanupPolicy,
    PartitionInfo,
    StorageStats,
    TopicConfig,
    TopicCreate,
    TopicInfo,
    topic_name_problem,
)
from goqueue.partitioning import partition_for_key
from goqueue.records import FetchResult, ProducerIdentity, RecordIn
from goqueue.replicas.manager import ReplicaManager
from goqueue.replicas.partition import Partition
from goqueue.replication import commands
from goqueue.replication.metadata import MetadataConflict, assign_replicas
from goqueue.security.quotas import ByteRateQuotas, Direction
from goqueue.storage import batch as batches
from goqueue.storage import identity
from goqueue.storage.log import AppendResult
from goqueue.storage.log_manager import LogManager
from goqueue.topic_settings import effective_settings

log = logging.getLogger(__name__)

DESCRIBE_PEER_TIMEOUT_S = 2.0
# How long a read waits for a new leader's high watermark to catch up (its followers' first fetches: milliseconds)
# before it is served from the high watermark as it stands. Without the wait, a record acknowledged by the previous
# leader could drop out of view for a moment after a leadership change (seen in the chart-upgrade test's CI run).
HIGH_WATERMARK_SETTLE_S = 1.0


class Broker:
    def __init__(self, settings: Settings, metrics: BrokerMetrics, membership: ClusterMembership,
                 replicas: ReplicaManager, logs: LogManager, registry: TopicRegistry, admin: ClusterAdmin,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = metrics
        self.membership = membership
        self.replicas = replicas
        self.logs = logs
        self.registry = registry
        self.admin = admin
        self.clock = clock
        self.broker_id = settings.broker_id()
        self.started_monotonic = time.monotonic()
        self._round_robin: dict[str, Iterator[int]] = {}
        self.quotas = ByteRateQuotas(self._byte_rate, QuotaMetrics(metrics.registry))
        register_state_collector(metrics.registry, self._collect_gauges)

    def _byte_rate(self, user: str, direction: Direction) -> int | None:
        """A user's quota (`security.quotas`) from the metadata."""
        entry = self.membership.view.users.get(user)
        quotas = {} if entry is None else entry.get("quotas", {})
        if direction is Direction.PRODUCE:
            return quotas.get("producer_byte_rate")
        return quotas.get("consumer_byte_rate")

    @property
    def ready(self) -> bool:
        return self.replicas.accepting

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the metadata Raft group, wait for it to catch up, recover local replicas, start writing."""
        await asyncio.to_thread(self.logs.prepare)
        await self.membership.start_raft()
        await self.membership.wait_metadata_ready()
        await self.membership.adopt_storage(await asyncio.to_thread(identity.load_or_create,
                                                                    self.settings.storage.data_dir))
        self.replicas.start_writer()
        await self.replicas.reconcile()
        await self.membership.register()
        self.logs.start_threads()
        self.membership.start_controller()
        self.replicas.start_upkeep()
        self.logs.warn_orphans([*self.replicas.partitions, *self.replicas.offline])
        self.replicas.accepting = True
        log.info("broker.ready", extra={"partitions": len(self.replicas.partitions),
                                        "offline": len(self.replicas.offline), "broker_id": self.broker_id})

    def begin_stop(self) -> None:
        """Stop accepting work: waiting acks=all producers and long-polls end now with NOT_READY, not at the end
        of the HTTP server's grace period with a cancellation."""
        self.replicas.begin_stop()

    async def stop(self) -> None:
        """Hand leadership away, finish queued writes, sync, checkpoint every log, leave the cluster."""
        self.begin_stop()
        was_ready = self.membership.is_ready
        self.membership.begin_stop()
        if was_ready:
            try:
                async with asyncio.timeout(self.settings.broker.shutdown_grace_s / 2):  # not wait_for: raft.py
                    await self.replicas.hand_over_leadership()
            except (TimeoutError, GoQueueError) as exc:
                log.warning("cluster.handover_incomplete", extra={"error": str(exc)})
        await self.replicas.stop_following()
        await self.membership.stop()
        await asyncio.to_thread(self.replicas.stop_writer)
        await asyncio.to_thread(self.logs.stop_threads)
        self.logs.close_all()

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady("the broker is recovering its storage, waiting for the metadata quorum, or stopping")

    # -- topics ----------------------------------------------------------------------------------------------

    async def create_topic(self, spec: TopicCreate, internal: bool = False) -> TopicInfo:
        self.check_ready()
        problem = topic_name_problem(spec.name)
        if problem:
            raise InvalidTopicName(f"invalid topic name {spec.name!r}: {problem}")
        if spec.name in self.registry.topics:
            raise TopicAlreadyExists(f"topic {spec.name!r} already exists", topic=spec.name)
        self._check_config(spec.config)
        try:
            assignment = assign_replicas(self.membership.state["brokers"], range(spec.partitions),
                                         spec.replication_factor)
            self._check_partition_limit(assignment)
            await self.membership.propose(commands.create_topic(
                spec.name, replication_factor=spec.replication_factor,
                config=spec.config.model_dump(by_alias=True, mode="json"), created_at_s=self.clock(),
                assignment=assignment, internal=internal))
        except MetadataConflict as exc:
            if spec.name in self.registry.topics:
                raise TopicAlreadyExists(f"topic {spec.name!r} already exists", topic=spec.name) from exc
            raise InvalidConfig(str(exc)) from exc
        await self.replicas.reconcile()
        log.info("topic.created", extra={"topic": spec.name, "partitions": spec.partitions,
                                         "replication_factor": spec.replication_factor})
        return await self.describe_topic(spec.name)

    def _check_partition_limit(self, assignment: dict[int, list[int]]) -> None:
        """`limits.maxPartitions` bounds the replicas one broker holds (each is open files and memory): refuse a
        topic change that would take any broker past it."""
        limit = self.settings.limits.max_partitions
        held: dict[int, int] = {}
        for topic in self.membership.state["topics"].values():
            for partition in topic["partition_state"].values():
                for broker_id in partition["replicas"]:
                    held[broker_id] = held.get(broker_id, 0) + 1
        for replicas in assignment.values():
            for broker_id in replicas:
                held[broker_id] = held.get(broker_id, 0) + 1
        over = {broker_id: count for broker_id, count in sorted(held.items()) if count > limit}
        if over:
            placed = ", ".join(f"{count} partition replicas on broker {b}" for b, count in over.items())
            raise InvalidConfig(f"this change would place {placed}; limits.maxPartitions is {limit} per broker — "
                                "add brokers, delete topics, or raise the limit")

    def _check_config(self, config: TopicConfig) -> None:
        if config.max_message_bytes and config.max_message_bytes > self.settings.limits.max_request_bytes:
            raise InvalidConfig(f"maxMessageBytes {config.max_message_bytes} exceeds the broker's "
                                f"limits.maxRequestBytes {self.settings.limits.max_request_bytes}")

    async def update_topic(self, name: str, partitions: int | None, config: dict[str, object] | None) -> TopicInfo:
        self.check_ready()
        meta = self.registry.get(name)
        if config:
            merged = {**meta.config.model_dump(by_alias=True), **config}
            try:
                new_config = TopicConfig.model_validate(merged)
            except ValueError as exc:
                raise InvalidConfig(f"invalid topic config: {exc}".splitlines()[0] + f" ({exc})") from exc
            self._check_config(new_config)
            await self._propose_topic_change(commands.set_topic_config(
                name, new_config.model_dump(by_alias=True, mode="json")))
        if partitions is not None and partitions != meta.partitions:
            if partitions < meta.partitions:
                raise PartitionsCannotShrink(
                    f"topic {name!r} has {meta.partitions} partitions; partitions can only grow")
            assignment = assign_replicas(self.membership.state["brokers"], range(meta.partitions, partitions),
                                         meta.replication_factor)
            self._check_partition_limit(assignment)
            await self._propose_topic_change(commands.grow_partitions(name, assignment))
            log.info("topic.partitions_added", extra={"topic": name, "from": meta.partitions, "to": partitions})
        await self.replicas.reconcile()
        return await self.describe_topic(name)

    async def _propose_topic_change(
            self, command: commands.SetTopicConfig | commands.GrowPartitions | commands.DeleteTopic) -> None:
        try:
            await self.membership.propose(command)
        except MetadataConflict as exc:
            if command["name"] not in self.registry.topics:
                raise TopicNotFound(f"topic {command['name']!r} does not exist", topic=command["name"]) from exc
            raise InvalidConfig(str(exc)) from exc

    async def delete_topic(self, name: str) -> None:
        self.check_ready()
        self.registry.get(name)
        await self._propose_topic_change(commands.delete_topic(name))
        self._round_robin.pop(name, None)
        await self.replicas.reconcile()
        log.info("topic.deleted", extra={"topic": name})

    def list_topics(self) -> list[TopicInfo]:
        self.check_ready()
        return [self._topic_info(name, details=False) for name in sorted(self.registry.topics)]

    async def describe_topic(self, name: str, details: bool = True) -> TopicInfo:
        """Metadata plus live offsets; partitions led elsewhere are asked of their leader (without `details`,
        the metadata only)."""
        self.check_ready()
        await self._known_topic(name)
        info = self._topic_info(name, details=details)
        if not details:
            return info
        for n, partition_info in enumerate(info.partition_details):
            local = self.replicas.partitions.get((name, partition_info.partition))
            if (local is None or not local.is_leader) and partition_info.leader is not None:
                with contextlib.suppress(GoQueueError):
                    # A short timeout: a hung leader must not hang `topic describe` (it is how on-call finds it).
                    remote = await self.membership.peers.partition_offsets(
                        self.membership.broker_url(partition_info.leader), name, partition_info.partition, None,
                        timeout_s=DESCRIBE_PEER_TIMEOUT_S)
                    info.partition_details[n] = partition_info.model_copy(update={
                        "start_offset": remote["earliest"], "high_watermark": remote["latest"],
                        "end_offset": remote["logEnd"], "size_bytes": remote.get("sizeBytes", 0),
                        "segments": remote.get("segments", 0)})
        found = info.partition_details
        return info.model_copy(update={"size_bytes": sum(p.size_bytes for p in found),
                                       "messages": sum(p.high_watermark - p.start_offset for p in found)})

    def _topic_info(self, name: str, details: bool) -> TopicInfo:
        meta = self.registry.get(name)
        infos = [self._partition_info(name, index) for index in range(meta.partitions)]
        return TopicInfo(
            name=name, partitions=meta.partitions, replication_factor=meta.replication_factor, config=meta.config,
            settings=effective_settings(meta.config, meta.replication_factor, self.settings),
            size_bytes=sum(i.size_bytes for i in infos),
            messages=sum(i.high_watermark - i.start_offset for i in infos),
            partition_details=infos if details else [])

    def _partition_info(self, topic: str, index: int) -> PartitionInfo:
        state = self.registry.partition_state(topic, index)
        leader = state["leader"] if state else None
        replicas, isr = (list(state["replicas"]), list(state["isr"])) if state else ([], [])
        partition = self.replicas.partitions.get((topic, index))
        if partition is None:
            problem = self.replicas.offline.get((topic, index))
            return PartitionInfo(partition=index, start_offset=0, end_offset=0, high_watermark=0, size_bytes=0,
                                 segments=0, online=leader is not None and problem is None,
                                 problem=problem or (None if leader is not None else "no leader"),
                                 leader=leader, replicas=replicas, isr=isr)
        plog = partition.log
        return PartitionInfo(
            partition=index, start_offset=plog.log_start_offset, end_offset=plog.log_end_offset,
            high_watermark=plog.high_watermark, size_bytes=plog.size_bytes, segments=len(plog.segments),
            online=leader is not None, problem=None if leader is not None else "no leader",
            leader=leader, replicas=replicas, isr=isr)

    # -- routing ---------------------------------------------------------------------------------------------

    async def _known_topic(self, name: str) -> TopicMeta:
        """The topic, linearizably: a topic created through another broker a moment ago may not be applied here
        yet, so before answering TOPIC_NOT_FOUND pass a Raft barrier (everything committed before it is applied
        after it) and look again. Costs one metadata round trip, only for names that are missing."""
        meta = self.registry.topics.get(name)
        if meta is None and len(self.membership.state["brokers"]) > 1:
            await self.membership.propose(commands.barrier(self.broker_id))
            meta = self.registry.topics.get(name)
        return meta if meta is not None else self.registry.get(name)

    def _local_leader(self, topic: str, index: int, forwarded: bool) -> Partition | None:
        """The partition if this broker leads it; None when another broker does (NOT_LEADER for a request that
        was already forwarded once); errors when nobody can."""
        self.check_ready()
        meta = self.registry.get(topic)
        if not 0 <= index < meta.partitions:
            raise PartitionNotFound(f"topic {topic!r} has partitions 0..{meta.partitions - 1}, not {index}",
                                    topic=topic, partition=index)
        if (topic, index) in self.replicas.offline:
            raise PartitionOffline(f"{topic}/{index} is offline here: {self.replicas.offline[(topic, index)]}")
        state = self.registry.partition_state(topic, index)
        if state is None or state["leader"] is None:
            raise PartitionOffline(f"{topic}/{index} has no leader (no in-sync replica is alive)")
        partition = self.replicas.partitions.get((topic, index))
        if state["leader"] == self.broker_id:
            if partition is None or not partition.is_leader:
                raise NotLeader(f"{topic}/{index}: this broker is becoming its leader; retry",
                                leader=self.broker_id)
            return partition
        if forwarded:
            raise NotLeader(f"{topic}/{index} is led by broker {state['leader']}", leader=state["leader"])
        return None

    def _leader_url(self, topic: str, index: int) -> str:
        state = self.registry.partition_state(topic, index)
        if state is None or state["leader"] is None:
            raise PartitionOffline(f"{topic}/{index} has no leader right now; retry")
        return self.membership.broker_url(state["leader"])

    # -- produce ---------------------------------------------------------------------------------------------

    async def produce(
        self,
        topic: str,
        records: Sequence[RecordIn],
        *,
        acks: Acks = Acks.ALL,
        partition: int | None = None,
        producer: ProducerIdentity | None = None,
        forwarded: bool = False,
    ) -> tuple[list[tuple[int, int]], bool]:
        """Append records; returns ((partition, offset) per record, in request order) and whether it was a retry.

        `forwarded`: another broker sent this request on (then it is never forwarded again: NOT_LEADER instead)."""
        answer = await self._produce(topic, records, acks=acks, partition=partition, producer=producer,
                                     forwarded=forwarded)
        await self.quotas.throttle(Direction.PRODUCE, sum(_record_bytes(r) for r in records))
        return answer

    async def _produce(self, topic: str, records: Sequence[RecordIn], *, acks: Acks, partition: int | None,
                       producer: ProducerIdentity | None, forwarded: bool) -> tuple[list[tuple[int, int]], bool]:
        self.check_ready()
        meta = await self._known_topic(topic)
        if not records:
            raise InvalidRequest("a produce request needs at least one record")
        grouped = self._group_by_partition(meta, records, partition)
        if producer is not None and len(grouped) > 1:
            raise InvalidRequest("an idempotent produce request must target a single partition")
        now_ms = int(self.clock() * 1000)
        # Local batches go to the writer before the first await, so one connection's requests keep their order.
        local: list[tuple[int, list[int], Partition, asyncio.Future[AppendResult]]] = []
        remote: list[tuple[int, list[int]]] = []
        for index, positions in grouped.items():
            leader = self._local_leader(topic, index, forwarded)
            if leader is None:
                remote.append((index, positions))
                continue
            if acks is Acks.ALL:
                self.replicas.check_insync(meta, leader)
            chosen = [records[i] for i in positions]
            batch = batches.build_batch(
                [(r.key, r.value, r.headers) for r in chosen], now_ms,
                timestamps_ms=None if all(r.timestamp_ms is None for r in chosen) else
                [r.timestamp_ms if r.timestamp_ms is not None else now_ms for r in chosen],
                **({"producer_id": producer.producer_id, "producer_epoch": producer.producer_epoch,
                    "base_sequence": producer.base_sequence} if producer else {}))
            local.append((index, positions, leader, self.replicas.submit(leader, batch)))
            self.metrics.bytes_in.labels(topic).inc(len(batch))
        offsets: list[tuple[int, int]] = [(0, -1)] * len(records)
        duplicate = False
        for index, positions in remote:
            found, dup = await self._forward_produce(topic, index, [records[i] for i in positions], acks, producer)
            duplicate = duplicate or dup
            for i, offset in zip(positions, found, strict=True):
                offsets[i] = (index, offset)
        if acks is Acks.NONE:
            for *_, future in local:
                future.add_done_callback(_consume_exception)
            return [(index, -1) for index, positions, *_ in local for _ in positions] + [
                offsets[i] for _, positions in remote for i in positions], False
        for index, positions, leader, future in local:
            result = await future
            duplicate = duplicate or result.duplicate
            if acks is Acks.ALL:
                await self.replicas.await_replicated(leader, result.last_offset + 1)
            for n, i in enumerate(positions):
                offsets[i] = (index, result.base_offset + n)
        self.metrics.messages.labels(topic).inc(sum(len(p) for _, p, *_ in local))
        return offsets, duplicate

    async def append_local(self, topic: str, index: int, leader_epoch: int, records: Sequence[RecordIn]) -> int:
        """The fenced local append (`ReplicaManager.append_local`): this leader epoch only, never forwarded."""
        return await self.replicas.append_local(topic, index, leader_epoch, records)

    def _group_by_partition(self, meta: TopicMeta, records: Sequence[RecordIn],
                            partition: int | None) -> dict[int, list[int]]:
        limit = meta.config.max_message_bytes or self.settings.limits.max_message_bytes
        grouped: dict[int, list[int]] = {}
        compacted = meta.config.cleanup_policy is CleanupPolicy.COMPACT
        for i, record in enumerate(records):
            size = _record_bytes(record)
            if size > limit:
                raise RecordTooLarge(f"record {i} is {size} bytes; topic {meta.name!r} allows {limit}",
                                     max_message_bytes=limit)
            if compacted and record.key is None:
                raise InvalidRequest(f"record {i} has no key; compacted topic {meta.name!r} needs one per record")
            target = partition if partition is not None else record.partition
            if target is None:
                target = self._choose_partition(meta, record.key)
            elif not 0 <= target < meta.partitions:
                raise PartitionNotFound(f"topic {meta.name!r} has partitions 0..{meta.partitions - 1}, not {target}",
                                        topic=meta.name, partition=target)
            grouped.setdefault(target, []).append(i)
        return grouped

    async def _forward_produce(self, topic: str, index: int, records: list[RecordIn], acks: Acks,
                               producer: ProducerIdentity | None) -> tuple[list[int], bool]:
        ident = None if producer is None else {"producerId": producer.producer_id,
                                               "producerEpoch": producer.producer_epoch,
                                               "baseSequence": producer.base_sequence}
        return await self.membership.peers.produce(
            self._leader_url(topic, index), topic, index,
            [(r.key, r.value, r.headers, r.timestamp_ms) for r in records], acks.value, ident)

    async def append_batch(self, topic: str, index: int, batch: bytearray, acks: Acks = Acks.ALL,
                           forwarded: bool = False) -> AppendResult:
        """Append a client-built batch (binary produce): validated whole, offsets stamped by the leader."""
        result = await self._append_batch(topic, index, batch, acks, forwarded)
        await self.quotas.throttle(Direction.PRODUCE, len(batch))
        return result

    async def _append_batch(self, topic: str, index: int, batch: bytearray, acks: Acks,
                            forwarded: bool) -> AppendResult:
        self.check_ready()
        meta = await self._known_topic(topic)
        try:
            header = batches.validate_batch(batch)
        except batches.InvalidBatch as exc:
            raise InvalidRequest(f"invalid record batch: {exc}") from exc
        if header.size != len(batch):
            raise InvalidRequest("a binary produce carries exactly one record batch")
        limit = meta.config.max_message_bytes or self.settings.limits.max_message_bytes
        if len(batch) > max(limit, self.settings.limits.max_request_bytes):
            raise RecordTooLarge(f"batch is {len(batch)} bytes", max_message_bytes=limit)
        leader = self._local_leader(topic, index, forwarded)
        if leader is None:
            answer = await self.membership.peers.append_batch(self._leader_url(topic, index), topic, index,
                                                              bytes(batch), acks.value)
            offsets = answer["offsets"]
            return AppendResult(offsets[0]["offset"] if offsets else -1, offsets[-1]["offset"] if offsets else -1,
                                bool(answer.get("duplicate")))
        if acks is Acks.ALL:
            self.replicas.check_insync(meta, leader)
        future = self.replicas.submit(leader, batch)
        self.metrics.bytes_in.labels(topic).inc(len(batch))
        if acks is Acks.NONE:
            future.add_done_callback(_consume_exception)
            return AppendResult(-1, -1)
        result = await future
        if acks is Acks.ALL:
            await self.replicas.await_replicated(leader, result.last_offset + 1)
        self.metrics.messages.labels(topic).inc(header.record_count)
        return result

    def _choose_partition(self, meta: TopicMeta, key: bytes | None) -> int:
        """Key hash (CRC32C, stable across brokers and versions) or round-robin for keyless records."""
        if key is not None:
            return partition_for_key(key, meta.partitions)
        cycle = self._round_robin.get(meta.name)
        if cycle is None:
            cycle = self._round_robin[meta.name] = itertools.cycle(range(meta.partitions))
        index = next(cycle)
        if index >= meta.partitions:  # partitions were added: restart the cycle over the new count
            cycle = self._round_robin[meta.name] = itertools.cycle(range(meta.partitions))
            index = next(cycle)
        return index

    # -- fetch -----------------------------------------------------------------------------------------------

    async def fetch(self, topic: str, index: int, offset: int, max_bytes: int, wait_s: float = 0.0,
                    forwarded: bool = False) -> FetchResult:
        """Whole batches from `offset` below the high watermark; waits up to `wait_s` for new records."""
        result = await self._fetch(topic, index, offset, max_bytes, wait_s, forwarded)
        await self.quotas.throttle(Direction.CONSUME, len(result.data))
        return result

    async def _fetch(self, topic: str, index: int, offset: int, max_bytes: int, wait_s: float,
                     forwarded: bool) -> FetchResult:
        max_bytes = max(1, min(max_bytes, self.settings.limits.max_fetch_bytes))
        wait_s = max(0.0, min(wait_s, self.settings.limits.max_wait_s))
        self.check_ready()
        await self._known_topic(topic)
        partition = self._local_leader(topic, index, forwarded)
        if partition is None:
            data, hwm, start, end = await self.membership.peers.fetch(self._leader_url(topic, index), topic, index,
                                                                   offset, max_bytes, wait_s)
            return FetchResult(data, hwm, start, end)
        if not partition.high_watermark_settled:
            await self._await_settled(partition)
        deadline = time.monotonic() + wait_s
        while True:
            plog = partition.log
            data = plog.read(offset, max_bytes)
            remaining = deadline - time.monotonic()
            if data or remaining <= 0 or not self.ready:
                self.metrics.bytes_out.labels(topic).inc(len(data))
                return FetchResult(data, plog.high_watermark, plog.log_start_offset, plog.log_end_offset)
            waiting = self.metrics.fetches_waiting.labels(topic)
            waiting.inc()
            try:
                await partition.wait_changed(remaining)
            finally:
                waiting.dec()
            self._check_still_leading(partition, partition.leader_epoch)

    async def _await_settled(self, partition: Partition) -> None:
        """Until the new leader's high watermark covers what it held when elected, or HIGH_WATERMARK_SETTLE_S (then
        no later read of this epoch waits: `Partition.settle_waived`)."""
        deadline = time.monotonic() + HIGH_WATERMARK_SETTLE_S
        epoch = partition.leader_epoch
        while not partition.high_watermark_settled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                partition.settle_waived = True
                log.info("partition.high_watermark_unsettled", extra={
                    "topic": partition.topic, "partition": partition.index, "epoch": partition.leader_epoch,
                    "high_watermark": partition.log.high_watermark, "elected_at": partition.epoch_start_offset})
                return
            await partition.wait_changed(remaining)
            self._check_still_leading(partition, epoch)

    def _check_still_leading(self, partition: Partition, epoch: int) -> None:
        """After a wait: the partition still here, and led here in `epoch`."""
        topic, index = partition.topic, partition.index
        if self.replicas.partitions.get((topic, index)) is not partition:
            raise TopicNotFound(f"{topic}/{index} was deleted while waiting", topic=topic)
        if not partition.is_leader or partition.leader_epoch != epoch:
            raise NotLeader(f"{topic}/{index} changed leadership while waiting; retry")

    def partition_offsets(self, topic: str, index: int, timestamp_ms: int | None = None) -> dict[str, Any]:
        """earliest / latest (high watermark) / log end, and the first offset at or after a timestamp, from the
        local replica (leader or follower)."""
        self.check_ready()
        partition = self.replicas.partitions.get((topic, index))
        if partition is None:
            meta = self.registry.get(topic)
            if not 0 <= index < meta.partitions:
                raise PartitionNotFound(f"topic {topic!r} has partitions 0..{meta.partitions - 1}, not {index}",
                                        topic=topic, partition=index)
            raise NotLeader(f"{topic}/{index} has no replica on this broker")
        plog = partition.log
        found = plog.offset_for_timestamp(timestamp_ms) if timestamp_ms is not None else None
        return {"earliest": plog.log_start_offset, "latest": plog.high_watermark, "logEnd": plog.log_end_offset,
                "forTimestamp": found, "sizeBytes": plog.size_bytes, "segments": len(plog.segments)}

    async def partition_offsets_routed(self, topic: str, index: int, timestamp_ms: int | None = None,
                                       forwarded: bool = False) -> dict[str, Any]:
        """`partition_offsets` from the partition's leader, wherever it is."""
        self.check_ready()
        await self._known_topic(topic)
        partition = self._local_leader(topic, index, forwarded)
        if partition is None:
            return await self.membership.peers.partition_offsets(self._leader_url(topic, index), topic, index,
                                                              timestamp_ms)
        if not partition.high_watermark_settled:
            await self._await_settled(partition)
        return self.partition_offsets(topic, index, timestamp_ms)

    # -- storage and gauges ----------------------------------------------------------------------------------

    def storage_stats(self) -> StorageStats:
        return self.logs.storage_stats()

    def _collect_gauges(self) -> Iterable[Metric]:
        yield from self.replicas.collect_gauges()
        yield from self.logs.collect_gauges()
        ready = gauge("goqueue_broker_ready", "1 when storage is recovered and the broker accepts writes.")
        ready.add_metric([], 1.0 if self.ready else 0.0)
        yield ready


def _consume_exception(future: asyncio.Future[AppendResult]) -> None:
    """acks=0: nobody awaits the future; log its failure instead of 'exception never retrieved'."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("produce.acks0_failed", extra={"error": str(future.exception())})


def _record_bytes(record: RecordIn) -> int:
    """A record's size as limits and quotas count it: key, value and headers."""
    return len(record.key or b"") + len(record.value or b"") + sum(len(k) + len(v) for k, v in record.headers)
