"""The broker's domain operations — topics, produce, fetch, storage statistics — shared by HTTP and gRPC.

`Broker` owns the partition logs, the writer thread (appends, group commit) and the maintenance thread
(retention, compaction). API adapters call it with decoded values and get domain results or `GoQueueError`s;
it knows nothing of HTTP or protobuf.

Data flow of a produce: the adapter decodes records → `produce` validates sizes, picks partitions and builds one
batch per partition on the event loop → `LogWriter` stamps offsets, writes, fdatasyncs → the round's completion
hops back to the loop (`_complete_round`), which advances each touched partition's high watermark, resolves the
waiting futures and wakes long-polling fetches. The event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import crc32c
from prometheus_client.core import Metric

from goqueue.config import Settings
from goqueue.errors import (
    GoQueueError,
    InvalidConfig,
    InvalidRequest,
    NotReady,
    PartitionNotFound,
    PartitionOffline,
    RecordTooLarge,
    Timeout,
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
)
from goqueue.storage import batch as batches
from goqueue.storage.compaction import compact_log
from goqueue.storage.log import AppendResult, CorruptSegment, LogConfig, PartitionLog
from goqueue.storage.retention import apply_retention
from goqueue.storage.writer import AppendJob, LogWriter
from goqueue.topics import TopicMeta, TopicRegistry

log = logging.getLogger(__name__)

Header = tuple[str, bytes]


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


class _Partition:
    """A partition this broker holds: its log and the event that wakes long-polls when it grows."""

    def __init__(self, topic: str, index: int, partition_log: PartitionLog) -> None:
        self.topic = topic
        self.index = index
        self.log = partition_log
        self.grown = asyncio.Event()

    def notify(self) -> None:
        self.grown.set()
        self.grown = asyncio.Event()


class Broker:
    def __init__(self, settings: Settings, metrics: BrokerMetrics, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.broker_id = settings.broker_id()
        self.registry = TopicRegistry(settings.storage.wal_dir)
        self.partitions: dict[tuple[str, int], _Partition] = {}
        self.offline: dict[tuple[str, int], str] = {}
        self._by_log: dict[PartitionLog, _Partition] = {}
        self.ready = False
        self.started_monotonic = time.monotonic()
        self.leader_epoch = 0
        self._round_robin: dict[str, Iterator[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer = LogWriter(
            settings.storage.fsync, self._on_round, queue_max=settings.storage.write_queue_max,
            fsync_interval_s=settings.storage.fsync_interval_s, observe_fsync=metrics.fsync.observe)
        self._maintenance_stop = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="goqueue-maintenance", daemon=True)
        register_state_collector(metrics.registry, self._collect_gauges)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover every partition (in a thread: recovery reads whole tails), then start the writer."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._recover)
        self._writer.start()
        self._maintenance.start()
        self.ready = True
        log.info("broker.ready", extra={"partitions": len(self.partitions), "offline": len(self.offline)})

    def _recover(self) -> None:
        self.settings.storage.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.storage.wal_dir.mkdir(parents=True, exist_ok=True)
        self.registry.load()
        for leftover in self.settings.storage.data_dir.glob("*.deleted"):
            shutil.rmtree(leftover)
        for meta in self.registry.topics.values():
            for index in range(meta.partitions):
                self._open_partition(meta, index)
        known = {self._partition_dir(t, p).name for t, p in self.partitions} | {
            self._partition_dir(t, p).name for t, p in self.offline}
        for path in self.settings.storage.data_dir.iterdir():
            if path.is_dir() and path.name not in known and path.resolve() != self.settings.storage.wal_dir.resolve():
                log.warning("storage.orphan_directory", extra={"path": str(path)})

    def _partition_dir(self, topic: str, index: int) -> Path:
        return self.settings.storage.data_dir / f"{topic}-{index}"

    def _log_config(self, meta: TopicMeta) -> LogConfig:
        storage = self.settings.storage
        return LogConfig(
            segment_bytes=meta.config.segment_bytes or storage.segment_bytes,
            segment_age_s=storage.segment_age_s, index_interval_bytes=storage.index_interval_bytes)

    def _open_partition(self, meta: TopicMeta, index: int) -> None:
        try:
            partition_log = PartitionLog.open(self._partition_dir(meta.name, index), self._log_config(meta), self.clock)
        except CorruptSegment as exc:
            log.error("partition.offline", extra={"topic": meta.name, "partition": index, "reason": str(exc)})
            self.offline[(meta.name, index)] = str(exc)
            return
        for cut in partition_log.recovery_cuts:
            self.metrics.recovery_truncated_bytes.inc(cut.bytes_cut)
        partition = _Partition(meta.name, index, partition_log)
        self.partitions[(meta.name, index)] = partition
        self._by_log[partition_log] = partition

    async def stop(self) -> None:
        """Finish queued writes, sync, checkpoint every log."""
        self.ready = False
        self._maintenance_stop.set()
        await asyncio.to_thread(self._writer.stop)
        if self._maintenance.is_alive():
            await asyncio.to_thread(self._maintenance.join)
        for partition in self.partitions.values():
            try:
                partition.log.close()
            except OSError as exc:  # e.g. ENOSPC writing the checkpoint: the next start validates the tail instead
                log.error("partition.close_failed", extra={
                    "topic": partition.topic, "partition": partition.index, "error": str(exc)})

    def check_ready(self) -> None:
        if not self.ready:
            raise NotReady("the broker is recovering its storage or shutting down")

    # -- topics ----------------------------------------------------------------------------------------------

    def create_topic(self, spec: TopicCreate) -> TopicInfo:
        self.check_ready()
        self._check_config(spec.config)
        meta = self.registry.create(spec)
        for index in range(meta.partitions):
            self._open_partition(meta, index)
        log.info("topic.created", extra={"topic": meta.name, "partitions": meta.partitions})
        return self.describe_topic(meta.name)

    def _check_config(self, config: TopicConfig) -> None:
        if config.max_message_bytes and config.max_message_bytes > self.settings.limits.max_request_bytes:
            raise InvalidConfig(f"maxMessageBytes {config.max_message_bytes} exceeds the broker's "
                                f"limits.maxRequestBytes {self.settings.limits.max_request_bytes}")

    def update_topic(self, name: str, partitions: int | None, config: dict[str, object] | None) -> TopicInfo:
        self.check_ready()
        meta = self.registry.get(name)
        if config:
            merged = {**meta.config.model_dump(by_alias=True), **config}
            try:
                new_config = TopicConfig.model_validate(merged)
            except ValueError as exc:
                raise InvalidConfig(f"invalid topic config: {exc}".splitlines()[0] + f" ({exc})") from exc
            self._check_config(new_config)
            meta = self.registry.set_config(name, new_config)
        if partitions is not None and partitions != meta.partitions:
            old = meta.partitions
            meta = self.registry.grow(name, partitions)
            for index in range(old, partitions):
                self._open_partition(meta, index)
            log.info("topic.partitions_added", extra={"topic": name, "from": old, "to": partitions})
        return self.describe_topic(name)

    def delete_topic(self, name: str) -> None:
        self.check_ready()
        meta = self.registry.delete(name)
        for index in range(meta.partitions):
            self.offline.pop((name, index), None)
            partition = self.partitions.pop((name, index), None)
            if partition is not None:
                self._by_log.pop(partition.log, None)
                partition.log.delete_files()
                partition.notify()
        self._round_robin.pop(name, None)
        log.info("topic.deleted", extra={"topic": name})

    def list_topics(self) -> list[TopicInfo]:
        self.check_ready()
        return [self.describe_topic(name, details=False) for name in sorted(self.registry.topics)]

    def describe_topic(self, name: str, details: bool = True) -> TopicInfo:
        meta = self.registry.get(name)
        infos = [self._partition_info(name, index) for index in range(meta.partitions)]
        return TopicInfo(
            name=name, partitions=meta.partitions, replication_factor=meta.replication_factor, config=meta.config,
            size_bytes=sum(i.size_bytes for i in infos),
            messages=sum(i.high_watermark - i.start_offset for i in infos),
            partition_details=infos if details else [])

    def _partition_info(self, topic: str, index: int) -> PartitionInfo:
        partition = self.partitions.get((topic, index))
        if partition is None:
            problem = self.offline.get((topic, index), "not open")
            return PartitionInfo(partition=index, start_offset=0, end_offset=0, high_watermark=0, size_bytes=0,
                                 segments=0, online=False, problem=problem)
        plog = partition.log
        return PartitionInfo(
            partition=index, start_offset=plog.log_start_offset, end_offset=plog.log_end_offset,
            high_watermark=plog.high_watermark, size_bytes=plog.size_bytes, segments=len(plog.segments),
            leader=self.broker_id, replicas=[self.broker_id], isr=[self.broker_id])

    def _partition(self, topic: str, index: int) -> _Partition:
        self.check_ready()
        partition = self.partitions.get((topic, index))
        if partition is not None:
            return partition
        meta = self.registry.get(topic)
        if (topic, index) in self.offline:
            raise PartitionOffline(f"{topic}/{index} is offline: {self.offline[(topic, index)]}")
        raise PartitionNotFound(f"topic {topic!r} has partitions 0..{meta.partitions - 1}, not {index}",
                                topic=topic, partition=index)

    # -- produce ---------------------------------------------------------------------------------------------

    async def produce(
        self,
        topic: str,
        records: Sequence[RecordIn],
        *,
        acks: Acks = Acks.ALL,
        partition: int | None = None,
        producer: ProducerIdentity | None = None,
    ) -> tuple[list[tuple[int, int]], bool]:
        """Append records; returns ((partition, offset) per record, in request order) and whether it was a retry."""
        self.check_ready()
        meta = self.registry.get(topic)
        if not records:
            raise InvalidRequest("a produce request needs at least one record")
        limit = meta.config.max_message_bytes or self.settings.limits.max_message_bytes
        now_ms = int(self.clock() * 1000)
        grouped: dict[int, list[int]] = {}
        for i, record in enumerate(records):
            size = len(record.key or b"") + len(record.value or b"") + sum(len(k) + len(v) for k, v in record.headers)
            if size > limit:
                raise RecordTooLarge(f"record {i} is {size} bytes; topic {topic!r} allows {limit}",
                                     max_message_bytes=limit)
            if meta.config.cleanup_policy is CleanupPolicy.COMPACT and record.key is None:
                raise InvalidRequest(f"record {i} has no key; compacted topic {topic!r} needs one per record")
            target = partition if partition is not None else record.partition
            if target is None:
                target = self._choose_partition(meta, record.key)
            grouped.setdefault(target, []).append(i)
        if producer is not None and len(grouped) > 1:
            raise InvalidRequest("an idempotent produce request must target a single partition")
        futures: list[tuple[int, list[int], asyncio.Future[AppendResult]]] = []
        loop = asyncio.get_running_loop()
        for index, positions in grouped.items():
            target_partition = self._partition(topic, index)
            chosen = [records[i] for i in positions]
            batch = batches.build_batch(
                [(r.key, r.value, r.headers) for r in chosen], now_ms,
                timestamps_ms=None if all(r.timestamp_ms is None for r in chosen) else
                [r.timestamp_ms if r.timestamp_ms is not None else now_ms for r in chosen],
                **({"producer_id": producer.producer_id, "producer_epoch": producer.producer_epoch,
                    "base_sequence": producer.base_sequence} if producer else {}))
            future: asyncio.Future[AppendResult] = loop.create_future()
            self._writer.submit(AppendJob(target_partition.log, batch, self.leader_epoch, context=future))
            futures.append((index, positions, future))
            self.metrics.bytes_in.labels(topic).inc(len(batch))
        if acks is Acks.NONE:
            for _, _, future in futures:
                future.add_done_callback(_consume_exception)
            return [(index, -1) for index, positions, _ in futures for _ in positions], False
        offsets: list[tuple[int, int]] = [(0, 0)] * len(records)
        duplicate = False
        for index, positions, future in futures:
            result = await future
            duplicate = duplicate or result.duplicate
            for n, i in enumerate(positions):
                offsets[i] = (index, result.base_offset + n)
        self.metrics.messages.labels(topic).inc(len(records))
        return offsets, duplicate

    async def append_batch(self, topic: str, index: int, batch: bytearray, acks: Acks = Acks.ALL) -> AppendResult:
        """Append a client-built batch (binary produce): validated whole, offsets stamped here."""
        self.check_ready()
        meta = self.registry.get(topic)
        partition = self._partition(topic, index)
        try:
            header = batches.validate_batch(batch)
        except batches.InvalidBatch as exc:
            raise InvalidRequest(f"invalid record batch: {exc}") from exc
        if header.size != len(batch):
            raise InvalidRequest("a binary produce carries exactly one record batch")
        limit = meta.config.max_message_bytes or self.settings.limits.max_message_bytes
        if len(batch) > max(limit, self.settings.limits.max_request_bytes):
            raise RecordTooLarge(f"batch is {len(batch)} bytes", max_message_bytes=limit)
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._writer.submit(AppendJob(partition.log, batch, self.leader_epoch, context=future))
        self.metrics.bytes_in.labels(topic).inc(len(batch))
        if acks is Acks.NONE:
            future.add_done_callback(_consume_exception)
            return AppendResult(-1, -1)
        result = await future
        self.metrics.messages.labels(topic).inc(header.record_count)
        return result

    def _choose_partition(self, meta: TopicMeta, key: bytes | None) -> int:
        """Key hash (CRC32C, stable across brokers and versions) or round-robin for keyless records."""
        if key is not None:
            return int(crc32c.crc32c(key)) % meta.partitions
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
        for partition_log in touched:
            partition_log.high_watermark = max(partition_log.high_watermark, partition_log.flushed_offset)
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
                partition.notify()

    # -- fetch -----------------------------------------------------------------------------------------------

    async def fetch(self, topic: str, index: int, offset: int, max_bytes: int, wait_s: float = 0.0) -> FetchResult:
        """Whole batches from `offset` below the high watermark; waits up to `wait_s` for new records."""
        partition = self._partition(topic, index)
        max_bytes = max(1, min(max_bytes, self.settings.limits.max_fetch_bytes))
        wait_s = max(0.0, min(wait_s, self.settings.limits.max_wait_s))
        deadline = time.monotonic() + wait_s
        while True:
            plog = partition.log
            data = plog.read(offset, max_bytes)
            remaining = deadline - time.monotonic()
            if data or remaining <= 0 or not self.ready:
                self.metrics.bytes_out.labels(topic).inc(len(data))
                return FetchResult(data, plog.high_watermark, plog.log_start_offset, plog.log_end_offset)
            try:
                await asyncio.wait_for(partition.grown.wait(), remaining)
            except TimeoutError:
                continue
            if self.partitions.get((topic, index)) is not partition:
                raise Timeout(f"{topic}/{index} was deleted while waiting")

    def partition_offsets(self, topic: str, index: int, timestamp_ms: int | None = None) -> dict[str, int | None]:
        """earliest / latest (high watermark) / log end, and the first offset at or after a timestamp."""
        plog = self._partition(topic, index).log
        found = plog.offset_for_timestamp(timestamp_ms) if timestamp_ms is not None else None
        return {"earliest": plog.log_start_offset, "latest": plog.high_watermark, "logEnd": plog.log_end_offset,
                "forTimestamp": found}

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

    def _collect_gauges(self) -> Iterable[Metric]:
        partitions = gauge("goqueue_partitions", "Partitions held by this broker.")
        partitions.add_metric([], len(self.partitions))
        offline = gauge("goqueue_offline_partitions", "Partitions that cannot serve (corrupt or no leader).")
        offline.add_metric([], len(self.offline))
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
        yield from (partitions, offline, segments, size, end, start, hwm)
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
