"""Every partition log on this broker's data volume: open and recover, quarantine, delete, retention and compaction,
high-watermark checkpoints, disk statistics (Kafka's `LogManager`).

It knows logs by (topic, partition) and nothing of roles or metadata: `replicas.ReplicaManager` decides which logs
should exist and asks for them; the retention policy of a topic comes from a callable given at construction.

Threads: `open`/`quarantine`/`delete` run on worker threads (the caller's `asyncio.to_thread`); the maintenance
thread applies retention and compaction every `retention.checkInterval`; the checkpoint thread writes each log's
high watermark every HWM_CHECKPOINT_INTERVAL_S. The table of logs is replaced, never mutated in place, so the
threads iterate over a consistent snapshot.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import Metric

from goqueue.config import RetentionSection, StorageSection
from goqueue.metrics import BrokerMetrics, gauge
from goqueue.models import PartitionStorage, StorageStats
from goqueue.storage import batch as batches
from goqueue.storage.compaction import compact_log
from goqueue.storage.log import CorruptSegment, LogConfig, PartitionLog
from goqueue.storage.retention import apply_retention

log = logging.getLogger(__name__)

LogKey = tuple[str, int]
# Kafka's replica.high.watermark.checkpoint.interval.ms is 5 s. The interval bounds only how far the checkpoint lags
# (what a restarted replica hides until its leader's high watermark reaches it again), never what is exposed.
HWM_CHECKPOINT_INTERVAL_S = 5.0


@dataclass(frozen=True)
class LogPolicy:
    """How one topic's logs are cleaned: compaction, or deletion by age and size (per partition)."""

    compact: bool
    tombstone_retention_s: float
    max_age_s: float
    max_bytes_per_partition: int


class LogManager:
    def __init__(self, storage: StorageSection, retention: RetentionSection, metrics: BrokerMetrics,
                 policy_for: Callable[[str], LogPolicy | None], clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.retention = retention
        self.metrics = metrics
        self.clock = clock
        self._policy_for = policy_for
        self.logs: dict[LogKey, PartitionLog] = {}
        self._stop = threading.Event()
        self._maintenance = threading.Thread(target=self._maintain, name="goqueue-maintenance", daemon=True)
        self._checkpointer = threading.Thread(target=self._checkpoint_high_watermarks, name="goqueue-hwm-checkpoint",
                                              daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Worker thread: create the data and WAL directories, finish deletes a crash interrupted."""
        self.storage.data_dir.mkdir(parents=True, exist_ok=True)
        self.storage.wal_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.storage.data_dir.glob("*.deleted"):
            shutil.rmtree(leftover)

    def start_threads(self) -> None:
        self._maintenance.start()
        self._checkpointer.start()

    def stop_threads(self) -> None:
        """Blocking: stop maintenance and checkpoints (call from a worker thread)."""
        self._stop.set()
        for thread in (self._maintenance, self._checkpointer):
            if thread.is_alive():
                thread.join()

    def close_all(self) -> None:
        """Checkpoint and close every log (a clean shutdown: the next start trusts their tails)."""
        for (topic, index), partition_log in self.logs.items():
            try:
                partition_log.close()
            except OSError as exc:  # e.g. ENOSPC writing the checkpoint: the next start validates the tail instead
                log.error("partition.close_failed", extra={"topic": topic, "partition": index, "error": str(exc)})

    def warn_orphans(self, known: Iterable[LogKey]) -> None:
        names = {self.directory(topic, index).name for topic, index in known}
        wal = self.storage.wal_dir.resolve()
        for path in self.storage.data_dir.iterdir():
            if path.is_dir() and path.name not in names and path.resolve() != wal:
                log.warning("storage.orphan_directory", extra={"path": str(path)})

    # -- logs ------------------------------------------------------------------------------------------------

    def directory(self, topic: str, index: int) -> Path:
        return self.storage.data_dir / f"{topic}-{index}"

    def log_config(self, segment_bytes: int | None) -> LogConfig:
        return LogConfig(segment_bytes=segment_bytes or self.storage.segment_bytes,
                         segment_age_s=self.storage.segment_age_s,
                         index_interval_bytes=self.storage.index_interval_bytes)

    def open(self, topic: str, index: int, config: LogConfig, may_quarantine: bool) -> tuple[PartitionLog, bool]:
        """Worker thread: open (and recover) a log; returns it and whether it was quarantined.

        A corrupt log that another replica can repair (`may_quarantine`) is renamed aside, never deleted, and an
        empty one opened in its place; otherwise `CorruptSegment` propagates and the directory stays untouched."""
        directory = self.directory(topic, index)
        quarantined = False
        try:
            partition_log = PartitionLog.open(directory, config, self.clock)
        except CorruptSegment as exc:
            if not may_quarantine:
                raise
            aside = directory.with_name(f"{directory.name}.corrupt-{int(self.clock())}")
            directory.rename(aside)
            log.error("partition.quarantined", extra={
                "topic": topic, "partition": index, "reason": str(exc), "moved_to": str(aside)})
            partition_log = PartitionLog.open(directory, config, self.clock)
            quarantined = True
        for cut in partition_log.recovery_cuts:
            self.metrics.recovery_truncated_bytes.inc(cut.bytes_cut)
        self.logs = {**self.logs, (topic, index): partition_log}
        return partition_log, quarantined

    def restore_quarantined(self, topic: str, index: int) -> None:
        """Worker thread: the quarantined copy was the only one after all — put it back (the partition then stays
        offline for an operator) and drop the empty log opened in its place."""
        self.delete(topic, index)
        directory = self.directory(topic, index)
        aside = max(directory.parent.glob(f"{directory.name}.corrupt-*"))
        aside.rename(directory)

    def delete(self, topic: str, index: int) -> None:
        """Worker thread: forget the log and delete its files."""
        logs = dict(self.logs)
        partition_log = logs.pop((topic, index), None)
        self.logs = logs
        if partition_log is not None:
            partition_log.delete_files()

    # -- maintenance -----------------------------------------------------------------------------------------

    def _maintain(self) -> None:
        while not self._stop.wait(self.retention.check_interval_s):
            self.run_maintenance()

    def run_maintenance(self) -> None:
        """Retention or compaction of every log, by its topic's policy."""
        for (topic, index), partition_log in self.logs.items():
            policy = self._policy_for(topic)
            if policy is None:
                continue
            try:
                if policy.compact:
                    result = compact_log(partition_log, self.clock(), policy.tombstone_retention_s)
                    self.metrics.compaction_removed_records.labels(topic).inc(result.records_removed)
                else:
                    deleted = apply_retention(partition_log, self.clock(), policy.max_age_s,
                                              policy.max_bytes_per_partition)
                    self.metrics.retention_deleted_segments.labels(topic).inc(len(deleted))
            except (OSError, batches.InvalidBatch) as exc:
                log.error("maintenance.failed", extra={"topic": topic, "partition": index, "error": str(exc)})

    def _checkpoint_high_watermarks(self) -> None:
        """Persist each moved high watermark (close writes the last one). A lagging checkpoint only hides committed
        records after a restart until the leader's high watermark reaches the replica again; a missing one would
        expose records that were never committed."""
        while not self._stop.wait(HWM_CHECKPOINT_INTERVAL_S):
            for (topic, index), partition_log in self.logs.items():
                try:
                    partition_log.checkpoint_high_watermark()
                except FileNotFoundError:
                    continue  # the partition was deleted meanwhile
                except OSError as exc:  # e.g. ENOSPC: the older checkpoint stays, which is safe (it only lags)
                    log.error("partition.hwm_checkpoint_failed", extra={
                        "topic": topic, "partition": index, "error": str(exc)})

    # -- read-outs -------------------------------------------------------------------------------------------

    def storage_stats(self) -> StorageStats:
        usage = shutil.disk_usage(self.storage.data_dir)
        parts = [PartitionStorage(topic=topic, partition=index, size_bytes=plog.size_bytes,
                                  segments=len(plog.segments), start_offset=plog.log_start_offset,
                                  end_offset=plog.log_end_offset)
                 for (topic, index), plog in sorted(self.logs.items())]
        topics: dict[str, int] = {}
        for part in parts:
            topics[part.topic] = topics.get(part.topic, 0) + part.size_bytes
        return StorageStats(
            data_dir=str(self.storage.data_dir), volume_total_bytes=usage.total,
            volume_used_bytes=usage.used, volume_free_bytes=usage.free,
            volume_used_percent=round(100.0 * usage.used / (usage.used + usage.free), 2) if usage.total else 0.0,
            log_bytes=sum(topics.values()), topics=topics, partitions=parts)

    def collect_gauges(self) -> Iterable[Metric]:
        labels = ["topic", "partition"]
        segments = gauge("goqueue_log_segments", "Segments per partition log.", labels)
        size = gauge("goqueue_log_size_bytes", "Bytes on disk per partition log.", labels)
        end = gauge("goqueue_log_end_offset", "Log end offset per partition.", labels)
        start = gauge("goqueue_log_start_offset", "Log start offset per partition.", labels)
        hwm = gauge("goqueue_high_watermark", "High watermark per partition.", labels)
        for (topic, index), plog in self.logs.items():
            values = [topic, str(index)]
            segments.add_metric(values, len(plog.segments))
            size.add_metric(values, plog.size_bytes)
            end.add_metric(values, plog.log_end_offset)
            start.add_metric(values, plog.log_start_offset)
            hwm.add_metric(values, plog.high_watermark)
        yield from (segments, size, end, start, hwm)
        disk = gauge("goqueue_disk_usage_percent", "Used space of the data volume, percent.")
        total = gauge("goqueue_disk_total_bytes", "Size of the data volume.")
        free = gauge("goqueue_disk_free_bytes", "Free space on the data volume.")
        try:
            usage = shutil.disk_usage(self.storage.data_dir)
            # used / (used + free), as df computes it (root-reserved blocks are not usable by the broker)
            disk.add_metric([], 100.0 * usage.used / (usage.used + usage.free) if usage.total else 0.0)
            total.add_metric([], usage.total)
            free.add_metric([], usage.free)
        except OSError:
            pass  # the data dir is not created yet: omit the gauges rather than report 0 %
        yield from (disk, total, free)
