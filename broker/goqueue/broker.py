"""The broker's domain operations — topics, produce, fetch, replication serving, storage statistics — shared by
HTTP and gRPC.

`Broker` owns the partition replicas this broker holds (`partition.Partition`: a log plus its role), the writer
thread (appends, group commit), the maintenance thread (retention, compaction) and its `Cluster` membership
(metadata Raft, controller, ISR upkeep, follower fetchers). API adapters call it with decoded values and get domain
results or `GoQueueError`s; it knows nothing of HTTP or protobuf.

Any broker serves any request: produce and fetch for a partition led elsewhere are forwarded to its leader
(`replication/peers.py`); topic changes are metadata commands proposed to Raft, and every broker then reconciles
its local replicas with the new metadata (`reconcile`).

Data flow of a produce on the leader: records → one batch per partition built on the event loop → `LogWriter`
stamps offsets and the partition's leader epoch, writes, fdatasyncs → the round's completion hops back to the loop
(`_complete_round`) → the high watermark advances once every in-sync replica has the records (at once when the ISR
is only this broker) → acks=all producers waiting for it are released, long-polling fetches woken. The event loop
never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client.core import Metric

from goqueue.cluster import Cluster
from goqueue.config import Settings
from goqueue.errors import (
    FencedLeaderEpoch,
    GoQueueError,
    InvalidConfig,
    InvalidRequest,
    InvalidTopicName,
    NotEnoughReplicas,
    NotLeader,
    NotReady,
    OffsetOutOfRange,
    PartitionNotFound,
    PartitionOffline,
    PartitionsCannotShrink,
    RecordTooLarge,
    Timeout,
    TopicAlreadyExists,
    TopicNotFound,
)
from goqueue.metrics import BrokerMetrics, gauge, register_state_collector
from goqueue.models import (
    Acks,
    CleanupPolicy,
    PartitionInfo,
    PartitionStorage,
    StorageStats,
    TopicConfig,
    TopicCreate,
    TopicInfo,
    topic_name_problem,
)
from goqueue.partition import Partition, Role
from goqueue.partitioning import partition_for_key
from goqueue.replication.isr import FollowerProgress, record_fetch
from goqueue.replication.metadata import MetadataConflict, assign_replicas
from goqueue.replication.peers import ReplicaFetchRequest, ReplicaFetchResponse
from goqueue.storage import batch as batches
from goqueue.storage import identity
from goqueue.storage.compaction import compact_log
from goqueue.storage.log import AppendResult, CorruptSegment, LogConfig, PartitionLog
from goqueue.storage.retention import apply_retention
from goqueue.storage.writer import AppendJob, LogWriter
from goqueue.topic_settings import effective_settings
from goqueue.topics import TopicMeta, TopicRegistry

log = logging.getLogger(__name__)

Header = tuple[str, bytes]
DESCRIBE_PEER_TIMEOUT_S = 2.0
# Kafka's replica.high.watermark.checkpoint.interval.ms is 5 s. The interval bounds only how far the checkpoint lags
# (what a restarted replica hides until its leader's high watermark reaches it again), never what is exposed.
HWM_CHECKPOINT_INTERVAL_S = 5.0
LEADERSHIP_RETRY_S = 2.0  # a leadership deferred by a full volume is tried again this often


class RecordIn(NamedTuple):
    """A record to produce, decoded from any API (a NamedTuple: thousands are built per request)."""

    key: bytes | None
    value: bytes | None
    headers: list[Header]
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class ProducerIdentity:
    producer_id: int
    producer_epoch: int
    base_sequence: int


@dataclass(frozen=True)
class FetchResult:
    data: bytes
    high_watermark: int
    log_start_offset: int
    log_end_offset: int


class Broker:
    def __init__(self, settings: Settings, metrics: BrokerMetrics, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.broker_id = settings.broker_id()
        self.cluster = Cluster(settings, self)
        self.registry = TopicRegistry(lambda: self.cluster.state)
        self.partitions: dict[tuple[str, int], Partition] = {}
        self.offline: dict[tuple[str, int], str] = {}
        self._by_log: dict[PartitionLog, Partition] = {}
        self.ready = False
        self.started_monotonic = time.monotonic()
        self._round_robin: dict[str, Iterator[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._reconcile_again = False
        self._reconcile_lock = asyncio.Lock()  # one reconcile at a time: two would open one log twice
        # Called on the event loop after every role or leader-epoch change of a local replica, and when one is
        # dropped (role OFFLINE): consumer-group coordinators load and drop the groups of state partitions here.
        self.role_listeners: list[Callable[[Partition], None]] = []
        self._writer = LogWriter(
            settings.storage.fsync, self._on_round, queue_max=settings.storage.write_queue_max,
            fsync_interval_s=settings.storage.fsync_interval_s, observe_fsync=metrics.fsync.observe)
        self._maintenance_stop = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="goqueue-maintenance", daemon=True)
        self._checkpointer = threading.Thread(target=self._checkpoint_high_watermarks, name="goqueue-hwm-checkpoint",
                                              daemon=True)
        register_state_collector(metrics.registry, self._collect_gauges)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the metadata Raft group, wait for it to catch up, recover local replicas, start writing."""
        self._loop = asyncio.get_running_loop()
        self.settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.storage.wal_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.settings.storage.data_dir.glob("*.deleted"):
            await asyncio.to_thread(shutil.rmtree, leftover)
        await self.cluster.start_raft()
        await self.cluster.wait_metadata_ready()
        await self.cluster.adopt_storage(await asyncio.to_thread(identity.load_or_create,
                                                                 self.settings.storage.data_dir))
        self._writer.start()
        await self.reconcile()
        await self.cluster.register()
        self._maintenance.start()
        self._checkpointer.start()
        self.cluster.start_loops()
        self._warn_orphans()
        self.ready = True
        log.info("broker.ready", extra={"partitions": len(self.partitions), "offline": len(self.offline),
                                        "broker_id": self.broker_id})

    def _warn_orphans(self) -> None:
        known = {self._partition_dir(t, p).name for t, p in [*self.partitions, *self.offline]}
        wal = self.settings.storage.wal_dir.resolve()
        for path in self.settings.storage.data_dir.iterdir():
            if path.is_dir() and path.name not in known and path.resolve() != wal:
                log.warning("storage.orphan_directory", extra={"path": str(path)})

    def begin_stop(self) -> None:
        """Stop accepting work: waiting acks=all producers and long-polls end now with NOT_READY, not at the end
        of the HTTP server's grace period with a cancellation."""
        self.ready = False
        for partition in self.partitions.values():
            partition.notify()

    async def stop(self) -> None:
        """Hand leadership away, finish queued writes, sync, checkpoint every log, leave the cluster."""
        self.begin_stop()
        await self.cluster.stop()
        if self._reconcile_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconcile_task
        self._maintenance_stop.set()
        await asyncio.to_thread(self._writer.stop)
        for thread in (self._maintenance, self._checkpointer):
            if thread.is_alive():
                await asyncio.to_thread(thread.join)
        for partition in self.partitions.values():
            try:
                partition.log.close()
            except OSError as exc:  # e.g. ENOSPC writing the checkpoint: the next start validates the tail instead
                log.error("partition.close_failed", extra={
                    "topic": partition.topic, "partition": partition.index, "error": str(exc)})

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady("the broker is recovering its storage, waiting for the metadata quorum, or stopping")

    # -- local replicas follow the metadata ------------------------------------------------------------------

    def schedule_reconcile(self) -> None:
        """Coalesce metadata changes into one reconcile at a time (called on the event loop)."""
        if self._reconcile_task is not None and not self._reconcile_task.done():
            self._reconcile_again = True
            return
        self._reconcile_task = asyncio.create_task(self._reconcile_until_settled(), name="reconcile")

    async def _reconcile_until_settled(self) -> None:
        while True:
            self._reconcile_again = False
            try:
                await self.reconcile()
            except Exception:  # a failed reconcile must not stop later ones; it is logged with its traceback
                log.exception("broker.reconcile_failed")
            if not self._reconcile_again:
                return

    async def reconcile(self) -> None:
        """Open replicas assigned to this broker, adopt leader/ISR changes, delete replicas no longer assigned."""
        async with self._reconcile_lock:
            await self._reconcile_once()

    async def _reconcile_once(self) -> None:
        state = self.cluster.state
        wanted: dict[tuple[str, int], tuple[TopicMeta, dict[str, Any]]] = {}
        topics = self.registry.topics
        for name, topic in state["topics"].items():
            for index, partition_state in topic["partition_state"].items():
                if self.broker_id in partition_state["replicas"]:
                    wanted[(name, int(index))] = (topics[name], partition_state)
        to_open = [key for key in wanted if key not in self.partitions and key not in self.offline]
        if to_open:
            quarantined = await asyncio.to_thread(self._open_partitions, [(wanted[k][0], k[1]) for k in to_open])
            for topic, index in quarantined:
                try:
                    await self.cluster.propose({"op": "leave_isr", "topic": topic, "partition": index,
                                                "broker": self.broker_id})
                except MetadataConflict as exc:  # the only in-sync copy: never serve an empty log in its place
                    await self._restore_quarantined(topic, index, str(exc))
                    del wanted[(topic, index)]
                    continue
                state = self.cluster.state  # the leave may have moved leadership: adopt the new state below
                wanted[(topic, index)] = (wanted[(topic, index)][0], state["topics"][topic]["partition_state"][index])
        now = time.monotonic()
        deferred: list[str] = []
        for key, (_, partition_state) in wanted.items():
            partition = self.partitions.get(key)
            try:
                changed = partition is not None and partition.apply_metadata(partition_state, now)
            except OSError as exc:  # the new leader epoch could not be written (a full volume): not leading yet
                deferred.append(f"{key[0]}/{key[1]}")
                log.warning("partition.leadership_deferred", extra={
                    "topic": key[0], "partition": key[1], "epoch": partition_state["leader_epoch"],
                    "error": str(exc), "retry_s": LEADERSHIP_RETRY_S})
                continue
            if partition is not None and changed:
                log.info("partition.role", extra={"topic": key[0], "partition": key[1], "role": partition.role.value,
                                                  "leader": partition.leader_id, "epoch": partition.leader_epoch})
                partition.advance_high_watermark()
                self._tell_role_listeners(partition)
        if deferred:  # no metadata change may come to retry them: try again on a timer until the volume has room
            asyncio.get_running_loop().call_later(LEADERSHIP_RETRY_S, self.schedule_reconcile)
        for key in [k for k in [*self.partitions, *self.offline] if k not in wanted]:
            await self._drop_partition(key)
        self.cluster.ensure_fetchers()

    def _open_partitions(self, items: list[tuple[TopicMeta, int]]) -> list[tuple[str, int]]:
        """Worker thread: open (and recover) logs. A corrupt replica of a replicated partition is quarantined
        (renamed aside, never deleted) and re-fetched from the leader; returns those, whose brokers must leave the
        ISR. Without another replica it stays offline, untouched, for an operator to decide."""
        quarantined: list[tuple[str, int]] = []
        for meta, index in items:
            directory = self._partition_dir(meta.name, index)
            try:
                partition_log = PartitionLog.open(directory, self._log_config(meta), self.clock)
            except CorruptSegment as exc:
                if meta.replication_factor < 2:
                    log.error("partition.offline", extra={"topic": meta.name, "partition": index, "reason": str(exc)})
                    self.offline[(meta.name, index)] = str(exc)
                    continue
                aside = directory.with_name(f"{directory.name}.corrupt-{int(self.clock())}")
                directory.rename(aside)
                log.error("partition.quarantined", extra={
                    "topic": meta.name, "partition": index, "reason": str(exc), "moved_to": str(aside)})
                partition_log = PartitionLog.open(directory, self._log_config(meta), self.clock)
                quarantined.append((meta.name, index))
            for cut in partition_log.recovery_cuts:
                self.metrics.recovery_truncated_bytes.inc(cut.bytes_cut)
            partition = Partition(meta.name, index, partition_log, self.broker_id)
            self.partitions[(meta.name, index)] = partition
            self._by_log[partition_log] = partition
        return quarantined

    async def _restore_quarantined(self, topic: str, index: int, reason: str) -> None:
        partition = self.partitions.pop((topic, index))
        self._by_log.pop(partition.log, None)
        await asyncio.to_thread(partition.log.delete_files)
        directory = self._partition_dir(topic, index)
        aside = max(directory.parent.glob(f"{directory.name}.corrupt-*"))
        aside.rename(directory)
        problem = f"corrupt, and no other in-sync replica to repair from ({reason})"
        self.offline[(topic, index)] = problem
        log.error("partition.offline", extra={"topic": topic, "partition": index, "reason": problem})

    async def _drop_partition(self, key: tuple[str, int]) -> None:
        """The topic was deleted or the replica moved away: delete the local copy."""
        self.offline.pop(key, None)
        partition = self.partitions.pop(key, None)
        if partition is None:
            return
        self._by_log.pop(partition.log, None)
        partition.role = Role.OFFLINE
        partition.notify()
        self._tell_role_listeners(partition)
        await asyncio.to_thread(partition.log.delete_files)
        log.info("partition.deleted", extra={"topic": key[0], "partition": key[1]})

    def _tell_role_listeners(self, partition: Partition) -> None:
        for listener in self.role_listeners:
            listener(partition)

    def _partition_dir(self, topic: str, index: int) -> Path:
        return self.settings.storage.data_dir / f"{topic}-{index}"

    def _log_config(self, meta: TopicMeta) -> LogConfig:
        storage = self.settings.storage
        return LogConfig(
            segment_bytes=meta.config.segment_bytes or storage.segment_bytes,
            segment_age_s=storage.segment_age_s, index_interval_bytes=storage.index_interval_bytes)

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
            assignment = assign_replicas(self.cluster.state["brokers"], range(spec.partitions),
                                         spec.replication_factor)
            await self.cluster.propose({
                "op": "create_topic", "name": spec.name, "replication_factor": spec.replication_factor,
                "config": spec.config.model_dump(by_alias=True, mode="json"), "created_at_s": self.clock(),
                "assignment": assignment, "internal": internal})
        except MetadataConflict as exc:
            if spec.name in self.registry.topics:
                raise TopicAlreadyExists(f"topic {spec.name!r} already exists", topic=spec.name) from exc
            raise InvalidConfig(str(exc)) from exc
        await self.reconcile()
        log.info("topic.created", extra={"topic": spec.name, "partitions": spec.partitions,
                                         "replication_factor": spec.replication_factor})
        return await self.describe_topic(spec.name)

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
            await self._propose_topic_change({"op": "set_topic_config", "name": name,
                                              "config": new_config.model_dump(by_alias=True, mode="json")})
        if partitions is not None and partitions != meta.partitions:
            if partitions < meta.partitions:
                raise PartitionsCannotShrink(
                    f"topic {name!r} has {meta.partitions} partitions; partitions can only grow")
            assignment = assign_replicas(self.cluster.state["brokers"], range(meta.partitions, partitions),
                                         meta.replication_factor)
            await self._propose_topic_change({"op": "grow_partitions", "name": name, "assignment": assignment})
            log.info("topic.partitions_added", extra={"topic": name, "from": meta.partitions, "to": partitions})
        await self.reconcile()
        return await self.describe_topic(name)

    async def _propose_topic_change(self, command: dict[str, Any]) -> None:
        try:
            await self.cluster.propose(command)
        except MetadataConflict as exc:
            if command["name"] not in self.registry.topics:
                raise TopicNotFound(f"topic {command['name']!r} does not exist", topic=command["name"]) from exc
            raise InvalidConfig(str(exc)) from exc

    async def delete_topic(self, name: str) -> None:
        self.check_ready()
        self.registry.get(name)
        await self._propose_topic_change({"op": "delete_topic", "name": name})
        self._round_robin.pop(name, None)
        await self.reconcile()
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
            local = self.partitions.get((name, partition_info.partition))
            if (local is None or not local.is_leader) and partition_info.leader is not None:
                with contextlib.suppress(GoQueueError):
                    # A short timeout: a hung leader must not hang `topic describe` (it is how on-call finds it).
                    remote = await self.cluster.peers.partition_offsets(
                        self.cluster.broker_url(partition_info.leader), name, partition_info.partition, None,
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
        state = self.registry.partition_state(topic, index) or {"leader": None, "replicas": [], "isr": []}
        common = {"leader": state["leader"], "replicas": state["replicas"], "isr": state["isr"]}
        partition = self.partitions.get((topic, index))
        if partition is None:
            problem = self.offline.get((topic, index))
            return PartitionInfo(partition=index, start_offset=0, end_offset=0, high_watermark=0, size_bytes=0,
                                 segments=0, online=state["leader"] is not None and problem is None,
                                 problem=problem or (None if state["leader"] is not None else "no leader"), **common)
        plog = partition.log
        return PartitionInfo(
            partition=index, start_offset=plog.log_start_offset, end_offset=plog.log_end_offset,
            high_watermark=plog.high_watermark, size_bytes=plog.size_bytes, segments=len(plog.segments),
            online=state["leader"] is not None, problem=None if state["leader"] is not None else "no leader",
            **common)

    def _min_insync(self, meta: TopicMeta) -> int:
        wanted = meta.config.min_insync_replicas or self.settings.replication.min_insync_replicas
        return min(wanted, meta.replication_factor)

    # -- routing ---------------------------------------------------------------------------------------------

    async def _known_topic(self, name: str) -> TopicMeta:
        """The topic, linearizably: a topic created through another broker a moment ago may not be applied here
        yet, so before answering TOPIC_NOT_FOUND pass a Raft barrier (everything committed before it is applied
        after it) and look again. Costs one metadata round trip, only for names that are missing."""
        meta = self.registry.topics.get(name)
        if meta is None and len(self.cluster.state["brokers"]) > 1:
            await self.cluster.propose({"op": "barrier", "broker": self.broker_id})
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
        if (topic, index) in self.offline:
            raise PartitionOffline(f"{topic}/{index} is offline here: {self.offline[(topic, index)]}")
        state = self.registry.partition_state(topic, index)
        if state is None or state["leader"] is None:
            raise PartitionOffline(f"{topic}/{index} has no leader (no in-sync replica is alive)")
        partition = self.partitions.get((topic, index))
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
        return self.cluster.broker_url(state["leader"])

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
            self._check_insync(meta, leader, acks)
            chosen = [records[i] for i in positions]
            batch = batches.build_batch(
                [(r.key, r.value, r.headers) for r in chosen], now_ms,
                timestamps_ms=None if all(r.timestamp_ms is None for r in chosen) else
                [r.timestamp_ms if r.timestamp_ms is not None else now_ms for r in chosen],
                **({"producer_id": producer.producer_id, "producer_epoch": producer.producer_epoch,
                    "base_sequence": producer.base_sequence} if producer else {}))
            local.append((index, positions, leader, self._submit(leader, batch)))
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
                await self._await_replicated(leader, result.last_offset + 1)
            for n, i in enumerate(positions):
                offsets[i] = (index, result.base_offset + n)
        self.metrics.messages.labels(topic).inc(sum(len(p) for _, p, *_ in local))
        return offsets, duplicate

    async def append_local(self, topic: str, index: int, leader_epoch: int, records: Sequence[RecordIn]) -> int:
        """Append to a partition this broker leads at `leader_epoch` and wait until every in-sync replica has the
        records (acks=all); returns the first offset. Never forwarded: a leader that moved (or a new epoch) is
        NOT_LEADER — for writers that own a partition's log while they lead it (the group coordinators' state)."""
        self.check_ready()
        partition = self.partitions.get((topic, index))
        if partition is None or not partition.is_leader or partition.leader_epoch != leader_epoch:
            raise NotLeader(f"this broker no longer leads {topic}/{index} at epoch {leader_epoch}")
        meta = self.registry.get(topic)
        self._check_insync(meta, partition, Acks.ALL)
        batch = batches.build_batch([(r.key, r.value, r.headers) for r in records], int(self.clock() * 1000))
        result = await self._submit(partition, batch)
        if partition.leader_epoch != leader_epoch:
            raise NotLeader(f"{topic}/{index} changed leader epoch during the write; it may or may not be committed")
        await self._await_replicated(partition, result.last_offset + 1)
        self.metrics.bytes_in.labels(topic).inc(len(batch))
        self.metrics.messages.labels(topic).inc(len(records))
        return result.base_offset

    def _group_by_partition(self, meta: TopicMeta, records: Sequence[RecordIn],
                            partition: int | None) -> dict[int, list[int]]:
        limit = meta.config.max_message_bytes or self.settings.limits.max_message_bytes
        grouped: dict[int, list[int]] = {}
        compacted = meta.config.cleanup_policy is CleanupPolicy.COMPACT
        for i, record in enumerate(records):
            size = len(record.key or b"") + len(record.value or b"") + sum(len(k) + len(v) for k, v in record.headers)
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

    def _check_insync(self, meta: TopicMeta, leader: Partition, acks: Acks) -> None:
        needed = self._min_insync(meta)
        if acks is Acks.ALL and len(leader.isr) < needed:
            raise NotEnoughReplicas(f"{meta.name}/{leader.index} has {len(leader.isr)} in-sync replicas "
                                    f"{leader.isr}; min.insync.replicas is {needed}")

    def _submit(self, partition: Partition, batch: bytearray) -> asyncio.Future[AppendResult]:
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._writer.submit(AppendJob(partition.log, batch, partition.leader_epoch, context=future))
        return future

    async def _await_replicated(self, partition: Partition, end_offset: int) -> None:
        """acks=all: wait until every in-sync replica has everything below `end_offset`."""
        deadline = time.monotonic() + self.settings.replication.ack_timeout_s
        epoch = partition.leader_epoch
        while partition.log.high_watermark < end_offset:
            if not self.ready:
                raise NotReady(f"the broker is stopping; {partition.topic}/{partition.index} write may or may not "
                               "be committed — retry with an idempotent producer")
            if partition.leader_epoch != epoch or not partition.is_leader:
                raise NotLeader(f"{partition.topic}/{partition.index} lost leadership before the write was "
                                "replicated; it may or may not be committed — retry with an idempotent producer")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"{partition.topic}/{partition.index}: in-sync replicas {partition.isr} did not "
                              f"confirm within {self.settings.replication.ack_timeout_s:g}s")
            await partition.wait_changed(min(remaining, 1.0))

    async def _forward_produce(self, topic: str, index: int, records: list[RecordIn], acks: Acks,
                               producer: ProducerIdentity | None) -> tuple[list[int], bool]:
        ident = None if producer is None else {"producerId": producer.producer_id,
                                               "producerEpoch": producer.producer_epoch,
                                               "baseSequence": producer.base_sequence}
        return await self.cluster.peers.produce(
            self._leader_url(topic, index), topic, index,
            [(r.key, r.value, r.headers, r.timestamp_ms) for r in records], acks.value, ident)

    async def append_batch(self, topic: str, index: int, batch: bytearray, acks: Acks = Acks.ALL,
                           forwarded: bool = False) -> AppendResult:
        """Append a client-built batch (binary produce): validated whole, offsets stamped by the leader."""
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
            answer = await self.cluster.peers.append_batch(self._leader_url(topic, index), topic, index, bytes(batch),
                                                           acks.value)
            offsets = answer["offsets"]
            return AppendResult(offsets[0]["offset"] if offsets else -1, offsets[-1]["offset"] if offsets else -1,
                                bool(answer.get("duplicate")))
        self._check_insync(meta, leader, acks)
        future = self._submit(leader, batch)
        self.metrics.bytes_in.labels(topic).inc(len(batch))
        if acks is Acks.NONE:
            future.add_done_callback(_consume_exception)
            return AppendResult(-1, -1)
        result = await future
        if acks is Acks.ALL:
            await self._await_replicated(leader, result.last_offset + 1)
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

    def _on_round(self, jobs: list[AppendJob], touched: set[PartitionLog]) -> None:
        """Writer thread: hand the finished round to the event loop in one hop."""
        self.metrics.group_commit_batches.observe(len(jobs))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._complete_round, jobs, touched)

    def _complete_round(self, jobs: list[AppendJob], touched: set[PartitionLog]) -> None:
        for job in jobs:
            future = job.context
            if future is None or future.done():
                continue
            if isinstance(job.outcome, GoQueueError):
                future.set_exception(job.outcome)
            else:
                future.set_result(job.outcome)
        for partition_log in touched:
            partition = self._by_log.get(partition_log)
            if partition is not None:
                partition.advance_high_watermark()
                partition.notify()

    # -- fetch -----------------------------------------------------------------------------------------------

    async def fetch(self, topic: str, index: int, offset: int, max_bytes: int, wait_s: float = 0.0,
                    forwarded: bool = False) -> FetchResult:
        """Whole batches from `offset` below the high watermark; waits up to `wait_s` for new records."""
        max_bytes = max(1, min(max_bytes, self.settings.limits.max_fetch_bytes))
        wait_s = max(0.0, min(wait_s, self.settings.limits.max_wait_s))
        self.check_ready()
        await self._known_topic(topic)
        partition = self._local_leader(topic, index, forwarded)
        if partition is None:
            data, hwm, start, end = await self.cluster.peers.fetch(self._leader_url(topic, index), topic, index,
                                                                   offset, max_bytes, wait_s)
            return FetchResult(data, hwm, start, end)
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
            if self.partitions.get((topic, index)) is not partition:
                raise TopicNotFound(f"{topic}/{index} was deleted while waiting", topic=topic)
            if not partition.is_leader:
                raise NotLeader(f"{topic}/{index} lost leadership while waiting; retry")

    def partition_offsets(self, topic: str, index: int, timestamp_ms: int | None = None) -> dict[str, Any]:
        """earliest / latest (high watermark) / log end, and the first offset at or after a timestamp, from the
        local replica (leader or follower)."""
        self.check_ready()
        partition = self.partitions.get((topic, index))
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
            return await self.cluster.peers.partition_offsets(self._leader_url(topic, index), topic, index,
                                                              timestamp_ms)
        return self.partition_offsets(topic, index, timestamp_ms)

    # -- serving followers (leader side) ---------------------------------------------------------------------

    async def serve_replica_fetch(self, request: ReplicaFetchRequest) -> ReplicaFetchResponse:
        """A follower's fetch: record its progress (moving the high watermark), return batches past its log end.

        Followers read past the high watermark (that is how it advances) but never past what this leader has
        made durable, so nothing a failed fdatasync rolls back is ever replicated.
        """
        self.check_ready()
        deadline = time.monotonic() + min(request.max_wait_ms / 1000, self.settings.limits.max_wait_s)
        while True:
            answers: list[tuple[str, int, str | None, int, int, bytes]] = []
            waiting: list[Partition] = []
            budget = request.max_bytes
            now = time.monotonic()
            for topic, index, offset, epoch in request.partitions:
                partition = self.partitions.get((topic, index))
                if partition is None or not partition.is_leader:
                    answers.append((topic, index, NotLeader.code, 0, 0, b""))
                    continue
                if epoch != partition.leader_epoch:
                    answers.append((topic, index, FencedLeaderEpoch.code, 0, 0, b""))
                    continue
                plog = partition.log
                progress = partition.followers.setdefault(request.replica_id, FollowerProgress(0, now, now))
                record_fetch(progress, offset, plog.flushed_offset, now)
                if partition.advance_high_watermark():
                    partition.notify()
                try:
                    data = plog.read(offset, max(budget, 1), upto=plog.flushed_offset) if budget > 0 else b""
                except OffsetOutOfRange:
                    answers.append((topic, index, OffsetOutOfRange.code, plog.high_watermark,
                                    plog.log_start_offset, b""))
                    continue
                budget -= len(data)
                if not data:
                    waiting.append(partition)
                answers.append((topic, index, None, plog.high_watermark, plog.log_start_offset, data))
            if any(a[5] or a[2] for a in answers) or not waiting or time.monotonic() >= deadline:
                return ReplicaFetchResponse(partitions=answers)
            await _wait_any(waiting, deadline - time.monotonic())

    def epoch_end_offset(self, topic: str, index: int, epoch: int) -> tuple[int, int]:
        partition = self.partitions.get((topic, index))
        if partition is None or not partition.is_leader:
            raise NotLeader(f"{topic}/{index} is not led by this broker")
        return partition.epochs.end_offset_for(epoch, partition.log.log_end_offset)

    # -- storage ---------------------------------------------------------------------------------------------

    def storage_stats(self) -> StorageStats:
        usage = shutil.disk_usage(self.settings.storage.data_dir)
        parts = [PartitionStorage(topic=p.topic, partition=p.index, size_bytes=p.log.size_bytes,
                                  segments=len(p.log.segments), start_offset=p.log.log_start_offset,
                                  end_offset=p.log.log_end_offset)
                 for p in sorted(self.partitions.values(), key=lambda p: (p.topic, p.index))]
        topics: dict[str, int] = {}
        for part in parts:
            topics[part.topic] = topics.get(part.topic, 0) + part.size_bytes
        return StorageStats(
            data_dir=str(self.settings.storage.data_dir), volume_total_bytes=usage.total,
            volume_used_bytes=usage.used, volume_free_bytes=usage.free,
            volume_used_percent=round(100.0 * usage.used / (usage.used + usage.free), 2) if usage.total else 0.0,
            log_bytes=sum(topics.values()), topics=topics, partitions=parts)

    def _maintain(self) -> None:
        """Maintenance thread: retention and compaction every `retention.checkInterval`."""
        while not self._maintenance_stop.wait(self.settings.retention.check_interval_s):
            self.run_maintenance()

    def _checkpoint_high_watermarks(self) -> None:
        """Checkpoint thread: persist each moved high watermark every HWM_CHECKPOINT_INTERVAL_S (close writes the
        last one). A lagging checkpoint only hides committed records after a restart until the leader's high
        watermark reaches the replica again; a missing one would expose records that were never committed."""
        while not self._maintenance_stop.wait(HWM_CHECKPOINT_INTERVAL_S):
            for (topic, index), partition in list(self.partitions.items()):
                try:
                    partition.log.checkpoint_high_watermark()
                except FileNotFoundError:
                    continue  # the partition was deleted meanwhile
                except OSError as exc:  # e.g. ENOSPC: the older checkpoint stays, which is safe (it only lags)
                    log.error("partition.hwm_checkpoint_failed", extra={
                        "topic": topic, "partition": index, "error": str(exc)})

    def run_maintenance(self) -> None:
        retention = self.settings.retention
        for (topic, index), partition in list(self.partitions.items()):
            meta = self.registry.topics.get(topic)
            if meta is None:
                continue
            config = meta.config
            try:
                if config.cleanup_policy is CleanupPolicy.COMPACT:
                    result = compact_log(partition.log, self.clock(),
                                         config.tombstone_retention_s or retention.tombstone_retention_s)
                    self.metrics.compaction_removed_records.labels(topic).inc(result.records_removed)
                else:
                    max_bytes = (config.retention_max_bytes or retention.max_size_bytes) // meta.partitions
                    deleted = apply_retention(partition.log, self.clock(),
                                              config.retention_max_age_s or retention.max_age_s, max_bytes)
                    self.metrics.retention_deleted_segments.labels(topic).inc(len(deleted))
            except (OSError, batches.InvalidBatch) as exc:
                log.error("maintenance.failed", extra={"topic": topic, "partition": index, "error": str(exc)})

    def _cluster_gauges(self) -> Iterable[Metric]:
        """Replication health. Each leader counts its own under-replicated partitions (sum over brokers for the
        cluster); offline partitions are counted by the metadata leader only, so the sum is the cluster's."""
        raft = self.cluster.raft
        is_metadata_leader = raft is not None and raft.is_leader()
        leader = gauge("goqueue_raft_leader", "1 on the broker that leads the metadata Raft group (the controller).")
        leader.add_metric([], 1.0 if is_metadata_leader else 0.0)
        under = gauge("goqueue_under_replicated_partitions",
                      "Partitions led here whose ISR is smaller than their replica set.")
        under.add_metric([], sum(1 for p in self.partitions.values() if p.is_leader and len(p.isr) < len(p.replicas)))
        offline = gauge("goqueue_offline_partitions",
                        "Partitions without a leader (reported by the metadata leader) or corrupt here.")
        leaderless = 0
        if is_metadata_leader:
            leaderless = sum(1 for t in self.cluster.state["topics"].values()
                             for p in t["partition_state"].values() if p["leader"] is None)
        offline.add_metric([], leaderless + len(self.offline))
        isr = gauge("goqueue_partition_isr_size", "In-sync replicas of partitions led here.", ["topic", "partition"])
        for (topic, index), partition in list(self.partitions.items()):
            if partition.is_leader:
                isr.add_metric([topic, str(index)], len(partition.isr))
        alive = gauge("goqueue_cluster_brokers_alive", "Brokers this broker sees connected to the metadata quorum.")
        alive.add_metric([], len(self.cluster.alive_brokers()) if raft is not None else 0)
        return [leader, under, offline, isr, alive]

    def _collect_gauges(self) -> Iterable[Metric]:
        partitions = gauge("goqueue_partitions", "Partitions held by this broker.")
        partitions.add_metric([], len(self.partitions))
        yield from self._cluster_gauges()
        labels = ["topic", "partition"]
        segments = gauge("goqueue_log_segments", "Segments per partition log.", labels)
        size = gauge("goqueue_log_size_bytes", "Bytes on disk per partition log.", labels)
        end = gauge("goqueue_log_end_offset", "Log end offset per partition.", labels)
        start = gauge("goqueue_log_start_offset", "Log start offset per partition.", labels)
        hwm = gauge("goqueue_high_watermark", "High watermark per partition.", labels)
        for (topic, index), partition in list(self.partitions.items()):
            values = [topic, str(index)]
            plog = partition.log
            segments.add_metric(values, len(plog.segments))
            size.add_metric(values, plog.size_bytes)
            end.add_metric(values, plog.log_end_offset)
            start.add_metric(values, plog.log_start_offset)
            hwm.add_metric(values, plog.high_watermark)
        yield from (partitions, segments, size, end, start, hwm)
        disk = gauge("goqueue_disk_usage_percent", "Used space of the data volume, percent.")
        total = gauge("goqueue_disk_total_bytes", "Size of the data volume.")
        free = gauge("goqueue_disk_free_bytes", "Free space on the data volume.")
        try:
            usage = shutil.disk_usage(self.settings.storage.data_dir)
            # used / (used + free), as df computes it (root-reserved blocks are not usable by the broker)
            disk.add_metric([], 100.0 * usage.used / (usage.used + usage.free) if usage.total else 0.0)
            total.add_metric([], usage.total)
            free.add_metric([], usage.free)
        except OSError:
            pass  # the data dir is not created yet: omit the gauges rather than report 0 %
        yield from (disk, total, free)
        depth = gauge("goqueue_write_queue_depth", "Appends waiting for the writer thread.")
        depth.add_metric([], self._writer.queue_depth)
        ready = gauge("goqueue_broker_ready", "1 when storage is recovered and the broker accepts writes.")
        ready.add_metric([], 1.0 if self.ready else 0.0)
        yield from (depth, ready)


def _consume_exception(future: asyncio.Future[AppendResult]) -> None:
    """acks=0: nobody awaits the future; log its failure instead of 'exception never retrieved'."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("produce.acks0_failed", extra={"error": str(future.exception())})


async def _wait_any(partitions: list[Partition], timeout_s: float) -> None:
    """Until any of the partitions changes, or the timeout."""
    if timeout_s <= 0:
        return
    waiters = [asyncio.ensure_future(p.grown.wait()) for p in partitions]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# Set per request by the HTTP layer: a request forwarded by another broker is never forwarded again.
forwarded_request: contextvars.ContextVar[bool] = contextvars.ContextVar("forwarded_request", default=False)
