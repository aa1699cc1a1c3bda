"""Following leaders elsewhere (Kafka's `ReplicaFetcherManager`): one fetcher task per leader broker that leads a
partition this broker follows. Each truncates to the leader's epoch boundary first (KIP-101), then pulls batches,
appends them, fdatasyncs, and reports its progress with its next fetch (which is how the leader's high watermark
and ISR move).

Replicas this broker is adding in a reassignment fetch under the replication throttle the metadata carries (one
`ThrottleBucket` for all the fetchers of this broker): while it is exhausted they are left out of the fetches, and
the others go on unthrottled, long-polling only until the bucket allows the added ones again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterator

from goqueue import http1
from goqueue.cluster.membership import ClusterMembership, log_task_death
from goqueue.config import Settings
from goqueue.errors import FencedLeaderEpoch, GoQueueError, NotLeader
from goqueue.replicas.partition import Partition, Role
from goqueue.replicas.throttle import ThrottleBucket, copy_is_throttled, fetchable
from goqueue.replication.epochs import UNDEFINED
from goqueue.replication.peers import ReplicaFetchRequest
from goqueue.storage.batch import BatchHeader, InvalidBatch, iter_headers
from goqueue.storage.log import LogDeleted

log = logging.getLogger(__name__)

FETCH_BACKOFF_S = 0.5
ANSWER_FRAMING_BYTES = 64 * 2**10
PARTITION_FRAMING_BYTES = 1024  # a topic name (≤ 249 characters), an error code, three offsets, msgpack framing


class ReplicaFetcherManager:
    def __init__(self, settings: Settings, membership: ClusterMembership,
                 following: Callable[[], list[Partition]]) -> None:
        self.settings = settings
        self.membership = membership
        self.broker_id = settings.broker_id()
        self._following_all = following  # the local replicas whose role is FOLLOWER
        self._fetchers: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self.throttle = ThrottleBucket()

    def ensure_running(self) -> None:
        """One fetcher task per leader broker that leads a partition this broker follows."""
        if self._stopping:
            return
        for leader_id in {p.leader_id for p in self._following_all() if p.leader_id is not None}:
            task = self._fetchers.get(leader_id)
            if task is None or task.done():
                task = asyncio.create_task(self._fetch_from(leader_id), name=f"fetch-{leader_id}")
                task.add_done_callback(log_task_death)  # an unexpected death is logged, never silent
                self._fetchers[leader_id] = task

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._fetchers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _following(self, leader_id: int) -> list[Partition]:
        return [p for p in self._following_all() if p.leader_id == leader_id]

    def _adding_here(self, partition: Partition) -> bool:
        return copy_is_throttled(self.membership.view.partition(partition.topic, partition.index), self.broker_id)

    async def _throttled(self, partitions: list[Partition]) -> tuple[list[Partition], set[Partition]]:
        """The partitions to fetch now, and which of them count against the throttle (waits while only throttled
        ones are left)."""
        self.throttle.set_rate(self.membership.view.replication_throttle)
        adding = {p for p in partitions if self._adding_here(p)}
        allowed = fetchable(partitions, adding.__contains__, self.throttle)
        if not allowed:
            await asyncio.sleep(self.throttle.wait_s())
        return allowed, adding

    async def _fetch_from(self, leader_id: int) -> None:
        replication = self.settings.replication
        peers = self.membership.peers
        while not self._stopping and not self.membership.stopping:
            following = self._following(leader_id)
            if not following:
                break
            partitions, adding = await self._throttled(following)
            if not partitions:
                continue
            max_wait_s = replication.fetch_max_wait_s
            if len(partitions) < len(following):
                # Added replicas are held back until the throttle allows them again: this fetch, for the others,
                # must not long-poll past that. Held for a whole long-poll on an idle partition each time, a copy
                # under steady load fetched twice a second, so it never reached the high watermark to join the ISR
                # and the move never completed.
                max_wait_s = min(max_wait_s, self.throttle.wait_s())
            try:
                url = self.membership.broker_url(leader_id)
                for partition in partitions:
                    if partition.needs_truncation:
                        await self._truncate_to_leader(url, partition)
                # Asking the leader where an epoch ends awaits: a partition may have been dropped meanwhile (a
                # reassignment moved it away and closed its log) or re-roled; fetch only what is still followed.
                partitions = [p for p in partitions if p.role is Role.FOLLOWER and p.leader_id == leader_id]
                if not partitions:
                    continue
                request = ReplicaFetchRequest(
                    replica_id=self.broker_id, max_wait_ms=math.ceil(max_wait_s * 1000),
                    max_bytes=replication.fetch_max_bytes,
                    partitions=[(p.topic, p.index, p.log.log_end_offset, p.leader_epoch) for p in partitions])
                response = await peers.replica_fetch(url, request, fetch_answer_bytes(self.settings, request))
                keys = {(p.topic, p.index) for p in adding}
                self.throttle.spend(sum(len(a[5]) for a in response.partitions if (a[0], a[1]) in keys))
                await self._apply_fetch(leader_id, request.partitions, partitions, response.partitions)
            except asyncio.CancelledError:
                raise
            except (GoQueueError, OSError) as exc:
                log.info("replica.fetch_failed", extra={"leader": leader_id, "error": str(exc)})
                await asyncio.sleep(FETCH_BACKOFF_S)
            except InvalidBatch as exc:  # the leader's batches do not continue our log: re-align by epoch
                log.warning("replica.diverged", extra={"leader": leader_id, "error": str(exc)})
                for partition in self._following(leader_id):
                    partition.needs_truncation = True
                await asyncio.sleep(FETCH_BACKOFF_S)
        self._fetchers.pop(leader_id, None)

    async def _truncate_to_leader(self, leader_url: str, partition: Partition) -> None:
        """KIP-101: ask where our latest epoch ends in the leader's log, cut ours there, then fetch."""
        plog = partition.log
        epoch = partition.epochs.latest_epoch
        if epoch == UNDEFINED:
            target = plog.high_watermark  # nothing known about epochs: only the high watermark is safe to keep
        else:
            _, end = await self.membership.peers.epoch_end_offset(leader_url, partition.topic, partition.index,
                                                                  epoch)
            if partition.role is not Role.FOLLOWER:
                return  # dropped (its log deleted: a reassignment moved it away) or re-roled while we asked
            target = plog.log_end_offset if end == UNDEFINED else end
        if target < plog.log_end_offset:
            log.warning("replica.truncated", extra={"topic": partition.topic, "partition": partition.index,
                                                    "from": plog.log_end_offset, "to": target, "epoch": epoch})
            try:
                await asyncio.to_thread(plog.truncate_to, target)
            except LogDeleted:
                return  # dropped while we truncated: nothing left to fetch for
            partition.epochs.truncate_from_end(target)
        partition.needs_truncation = False

    async def _apply_fetch(self, leader_id: int, asked: list[tuple[str, int, int, int]], partitions: list[Partition],
                           answers: list[tuple[str, int, str | None, int, int, bytes]]) -> None:
        by_key = {(p.topic, p.index): p for p in partitions}
        asked_at = {(topic, index): (offset, epoch) for topic, index, offset, epoch in asked}
        appended: list[tuple[Partition, bytes, int]] = []
        for topic, index, error, hwm, _log_start, data in answers:
            partition = by_key.get((topic, index))
            if partition is None or not _still_as_asked(partition, leader_id, asked_at.get((topic, index))):
                continue
            if error is not None:
                if error in (FencedLeaderEpoch.code, NotLeader.code):
                    await asyncio.sleep(0)  # metadata will move us; nothing to do until it does
                else:
                    log.info("replica.partition_error", extra={"topic": topic, "partition": index, "error": error})
                continue
            appended.append((partition, data, hwm))
        if appended:
            await asyncio.to_thread(_append_and_sync, appended)
        for partition, data, hwm in appended:
            if partition.role is not Role.FOLLOWER:
                continue  # dropped or re-roled while the worker thread appended
            if partition.leader_id != leader_id or partition.leader_epoch != asked_at[partition.topic,
                                                                                         partition.index][1]:
                partition.needs_truncation = True  # it moved to another leader while these records were written:
                continue                           # that leader's fetcher cuts them back to its log first
            for header in _headers(data):
                partition.epochs.assign(header.leader_epoch, header.base_offset)
            plog = partition.log
            plog.high_watermark = max(plog.high_watermark, min(hwm, plog.log_end_offset))
            partition.notify()


def _still_as_asked(partition: Partition, leader_id: int, asked: tuple[int, int] | None) -> bool:
    """An answer applies only to the replica that asked for it: still a follower of the same leader at the same
    epoch, its log end where the fetch started. While a fetch was in flight the partition may have moved to another
    leader (whose fetcher may already have truncated it to the new leader's log): the old leader's records, appended
    then, could be ones the new leader never had."""
    if asked is None or partition.role is not Role.FOLLOWER or partition.leader_id != leader_id:
        return False
    offset, epoch = asked
    return partition.leader_epoch == epoch and partition.log.log_end_offset == offset


def fetch_answer_bytes(settings: Settings, request: ReplicaFetchRequest) -> int:
    """The largest answer a fetch may get: its byte budget, plus the one whole batch the leader sends past it (a
    producer's batch, up to `limits.maxRequestBytes`), plus the framing of each partition's entry. The batch
    allowance is never below http1's default bound (64 MiB), so a batch the leader took under a larger limit than
    this broker's (before the limit was lowered, or on a broker configured otherwise) does not stall its replica
    unless that batch is larger than both."""
    batch = max(settings.limits.max_request_bytes, http1.MAX_ANSWER_BYTES)
    return request.max_bytes + batch + ANSWER_FRAMING_BYTES + PARTITION_FRAMING_BYTES * len(request.partitions)


def _append_and_sync(appended: list[tuple[Partition, bytes, int]]) -> None:
    """Worker thread: append each partition's fetched batches, then fdatasync each log once."""
    for partition, data, _ in appended:
        if data:
            with _unless_dropped(partition):
                partition.log.append_replicated(data)
    for partition, data, _ in appended:
        if data:
            with _unless_dropped(partition):
                partition.log.flush()


@contextlib.contextmanager
def _unless_dropped(partition: Partition) -> Iterator[None]:
    """A partition dropped while this thread wrote (a reassignment moved it away or its topic went, and another
    worker thread deleted its files) has nothing left to keep; a failure of any other partition is raised."""
    try:
        yield
    except (LogDeleted, OSError, ValueError) as exc:
        # Dropped: its role went OFFLINE first, then its files (so a closed segment may fail before LogDeleted can).
        # A failure of a replica still here, or one just re-roled, is not swallowed.
        if partition.role is Role.FOLLOWER or (partition.log.segments and not isinstance(exc, LogDeleted)):
            raise
        log.info("replica.dropped_while_writing", extra={"topic": partition.topic, "partition": partition.index})


def _headers(data: bytes) -> list[BatchHeader]:
    return [header for _, header in iter_headers(data)]
