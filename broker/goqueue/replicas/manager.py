"""The partition replicas this broker holds, following the metadata (Kafka's `ReplicaManager`).

`ReplicaManager` owns:
* the partition table (`partitions`: a log from `LogManager` plus its role; `offline`: replicas that cannot open);
* applying metadata (`reconcile`): open replicas assigned here, adopt leader/ISR changes, drop replicas no longer
  assigned — one reconcile at a time, coalesced, scheduled by `ClusterMembership`'s `on_applied` callback;
* the local write path: the writer thread (appends, group commit), the high watermark that follows it, acks=all
  waits, and the fenced `append_local` of writers that own a partition while they lead it;
* serving followers (`serve_replica_fetch`, `epoch_end_offset`), and, through `fetcher.ReplicaFetcherManager` and
  `isr_upkeep.IsrUpkeep`, following leaders elsewhere and keeping the ISR of partitions led here;
* role listeners: called on the event loop after every role or leader-epoch change of a local replica, and when
  one is dropped (role OFFLINE) — the consumer-group coordinators load and drop their groups there.

Data flow of an append on the leader: a batch → `LogWriter` stamps offsets and the leader epoch, writes,
fdatasyncs → the round's completion hops back to the loop (`_complete_round`) → the high watermark advances once
every in-sync replica has the records (at once when the ISR is only this broker) → acks=all writers waiting for it
are released, long-polling fetches woken. The event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import Metric

from goqueue.cluster.membership import ClusterMembership
from goqueue.cluster.topics import TopicMeta, TopicRegistry
from goqueue.config import Settings
from goqueue.errors import (
    FencedLeaderEpoch,
    GoQueueError,
    NotEnoughReplicas,
    NotLeader,
    NotReady,
    OffsetOutOfRange,
    Timeout,
)
from goqueue.metrics import BrokerMetrics, gauge
from goqueue.records import RecordIn
from goqueue.replicas.fetcher import ReplicaFetcherManager
from goqueue.replicas.isr_upkeep import IsrUpkeep
from goqueue.replicas.partition import Partition, Role
from goqueue.replication import commands
from goqueue.replication.controller import controlled_shutdown_plan
from goqueue.replication.isr import FollowerProgress, record_fetch
from goqueue.replication.metadata import MetadataConflict
from goqueue.replication.peers import ReplicaFetchRequest, ReplicaFetchResponse
from goqueue.replication.reassignment import under_replicated
from goqueue.replication.view import PartitionView
from goqueue.storage import batch as batches
from goqueue.storage.log import AppendResult, CorruptSegment, PartitionLog
from goqueue.storage.log_manager import LogManager
from goqueue.storage.writer import AppendJob, LogWriter

log = logging.getLogger(__name__)

LEADERSHIP_RETRY_S = 2.0  # a leadership deferred by a full volume is tried again this often
HANDOVER_PROPOSE_TIMEOUT_S = 5.0  # a healthy quorum commits in milliseconds; a stopping one never does
QUORUM_CHECK_S = 0.05  # how often a handover's pending proposal looks whether the quorum is still there ...
QUORUM_LOST_S = 1.0    # ... and how long it must be out of reach before the handover ends

PartitionKey = tuple[str, int]


class ReplicaManager:
    def __init__(self, settings: Settings, metrics: BrokerMetrics, membership: ClusterMembership,
                 logs: LogManager, registry: TopicRegistry, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.metrics = metrics
        self.membership = membership
        self.logs = logs
        self.registry = registry
        self.clock = clock
        self.broker_id = settings.broker_id()
        self.partitions: dict[PartitionKey, Partition] = {}
        self.offline: dict[PartitionKey, str] = {}
        self._by_log: dict[PartitionLog, Partition] = {}
        self.role_listeners: list[Callable[[Partition], None]] = []
        # False while recovering and from the moment the broker stops: acks=all waits and long-polls end at once.
        self.accepting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._reconcile_again = False
        self._reconcile_lock = asyncio.Lock()  # one reconcile at a time: two would open one log twice
        self._opening: asyncio.Future[list[PartitionKey]] | None = None  # logs being opened on a worker thread
        self._writer = LogWriter(
            settings.storage.fsync, self._on_round, queue_max=settings.storage.write_queue_max,
            fsync_interval_s=settings.storage.fsync_interval_s, observe_fsync=metrics.fsync.observe)
        self.fetchers = ReplicaFetcherManager(settings, membership, self._following)
        self.isr_upkeep = IsrUpkeep(settings, metrics, membership, self._led)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start_writer(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer.start()

    def start_upkeep(self) -> None:
        self.isr_upkeep.start()

    def begin_stop(self) -> None:
        self.accepting = False
        for partition in self.partitions.values():
            partition.notify()

    async def hand_over_leadership(self) -> None:
        """Controlled shutdown: move every leadership held here to an in-sync replica that has caught up.

        Only while a metadata quorum is reachable: when the whole cluster stops at once (a namespace or release
        deleted), the last brokers standing would otherwise wait out a proposal timeout per partition, most of
        their grace period, for moves that cannot commit. A quorum out of reach for QUORUM_LOST_S (a partner
        reconnecting is not enough) ends the handover; the move then pending was handed to Raft already and may
        still commit, which is as safe as any (it names the epoch it expects)."""
        alive = self.membership.alive_brokers()
        ends = {key: {b: p.log_end_offset for b, p in partition.followers.items() if p.fetched}
                for key, partition in self.partitions.items() if partition.is_leader}
        plan = controlled_shutdown_plan(self.membership.state, self.broker_id, alive, ends)
        lost_since: float | None = None
        for done, command in enumerate(plan):
            proposal = asyncio.ensure_future(self.membership.propose_quietly(command, HANDOVER_PROPOSE_TIMEOUT_S))
            quorum_lost = False
            try:
                while not proposal.done() and not quorum_lost:
                    await asyncio.wait([proposal], timeout=QUORUM_CHECK_S)
                    if self.membership.quorum_reachable():
                        lost_since = None
                    else:
                        lost_since = lost_since or time.monotonic()
                        quorum_lost = time.monotonic() - lost_since >= QUORUM_LOST_S
            finally:
                proposal.cancel()  # a no-op once done; else abandoned (also when the stop's deadline cancels us)
            if proposal.done() and not proposal.cancelled() and proposal.exception() is not None:
                log.warning("cluster.handover_move_failed", extra={"command": command["op"],
                                                                   "error": repr(proposal.exception())})
            if quorum_lost:
                log.warning("cluster.handover_skipped", extra={
                    "reason": "no metadata quorum reachable (the rest of the cluster is stopping or gone)",
                    "left": len(plan) - done})
                return

    async def stop_following(self) -> None:
        await self.isr_upkeep.stop()
        await self.fetchers.stop()
        if self._reconcile_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconcile_task
        if self._opening is not None:  # its logs are in the table once it returns, so the stop closes them
            await asyncio.wait([self._opening])

    def stop_writer(self) -> None:
        """Blocking: finish queued writes (call from a worker thread)."""
        self._writer.stop()

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
        state = self.membership.state
        wanted: dict[PartitionKey, tuple[TopicMeta, PartitionView]] = {}
        topics = self.registry.topics
        for name, topic in state["topics"].items():
            for index, partition_state in topic["partition_state"].items():
                if self.broker_id in partition_state["replicas"]:
                    wanted[(name, int(index))] = (topics[name], partition_state)
        to_open = [key for key in wanted if key not in self.partitions and key not in self.offline]
        if to_open:
            # Shielded: a cancelled start (a stop while starting) must not leave this thread opening logs while
            # the stop closes them; `stop_following` waits for it.
            self._opening = asyncio.ensure_future(
                asyncio.to_thread(self._open_replicas, [(wanted[k][0], k[1]) for k in to_open]))
            quarantined = await asyncio.shield(self._opening)
            for key in quarantined:
                try:
                    await self.membership.propose(commands.leave_isr(*key, self.broker_id))
                except MetadataConflict as exc:  # the only in-sync copy: never serve an empty log in its place
                    await self._restore_quarantined(*key, str(exc))
                    del wanted[key]
                    continue
                state = self.membership.state  # the leave may have moved leadership: adopt the new state below
                wanted[key] = (wanted[key][0], state["topics"][key[0]]["partition_state"][key[1]])
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
        self.fetchers.ensure_running()

    def _open_replicas(self, items: list[tuple[TopicMeta, int]]) -> list[PartitionKey]:
        """Worker thread: open (and recover) logs. A corrupt replica of a replicated partition is quarantined and
        re-fetched from the leader; returns those, whose brokers must leave the ISR. Without another replica it
        stays offline, untouched, for an operator to decide."""
        quarantined: list[PartitionKey] = []
        for meta, index in items:
            config = self.logs.log_config(meta.config.segment_bytes)
            try:
                partition_log, moved_aside = self.logs.open(meta.name, index, config,
                                                            may_quarantine=meta.replication_factor >= 2)
            except CorruptSegment as exc:
                log.error("partition.offline", extra={"topic": meta.name, "partition": index, "reason": str(exc)})
                self.offline[(meta.name, index)] = str(exc)
                continue
            if moved_aside:
                quarantined.append((meta.name, index))
            partition = Partition(meta.name, index, partition_log, self.broker_id)
            self.partitions[(meta.name, index)] = partition
            self._by_log[partition_log] = partition
        return quarantined

    async def _restore_quarantined(self, topic: str, index: int, reason: str) -> None:
        partition = self.partitions.pop((topic, index))
        self._by_log.pop(partition.log, None)
        await asyncio.to_thread(self.logs.restore_quarantined, topic, index)
        problem = f"corrupt, and no other in-sync replica to repair from ({reason})"
        self.offline[(topic, index)] = problem
        log.error("partition.offline", extra={"topic": topic, "partition": index, "reason": problem})

    async def _drop_partition(self, key: PartitionKey) -> None:
        """The topic was deleted or the replica moved away: delete the local copy."""
        self.offline.pop(key, None)
        partition = self.partitions.pop(key, None)
        if partition is None:
            return
        self._by_log.pop(partition.log, None)
        partition.role = Role.OFFLINE
        partition.notify()
        self._tell_role_listeners(partition)
        await asyncio.to_thread(self.logs.delete, *key)
        log.info("partition.deleted", extra={"topic": key[0], "partition": key[1]})

    def _tell_role_listeners(self, partition: Partition) -> None:
        for listener in self.role_listeners:
            listener(partition)

    def _following(self) -> list[Partition]:
        return [p for p in self.partitions.values() if p.role is Role.FOLLOWER and p.leader_id is not None]

    def _led(self) -> list[Partition]:
        return [p for p in self.partitions.values() if p.is_leader]

    # -- the local write path --------------------------------------------------------------------------------

    def check_insync(self, meta: TopicMeta, leader: Partition) -> None:
        """acks=all: refuse before writing when the ISR is below min.insync.replicas — never more than the copies
        the partition has: while a replication factor goes down, a partition already moved to fewer replicas takes
        writes before its topic's factor follows (once every partition has moved)."""
        needed = min(meta.config.min_insync_replicas or self.settings.replication.min_insync_replicas,
                     meta.replication_factor, len(leader.replicas))
        if len(leader.isr) < needed:
            raise NotEnoughReplicas(f"{meta.name}/{leader.index} has {len(leader.isr)} in-sync replicas "
                                    f"{leader.isr}; min.insync.replicas is {needed}")

    def submit(self, partition: Partition, batch: bytearray) -> asyncio.Future[AppendResult]:
        """Queue a batch for the writer thread; the future resolves once it is written (and synced by policy)."""
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._writer.submit(AppendJob(partition.log, batch, partition.leader_epoch, context=future))
        return future

    async def await_replicated(self, partition: Partition, end_offset: int) -> None:
        """acks=all: wait until every in-sync replica has everything below `end_offset`."""
        deadline = time.monotonic() + self.settings.replication.ack_timeout_s
        epoch = partition.leader_epoch
        while partition.log.high_watermark < end_offset:
            if not self.accepting:
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

    async def append_local(self, topic: str, index: int, leader_epoch: int, records: Sequence[RecordIn]) -> int:
        """Append to a partition this broker leads at `leader_epoch` and wait until every in-sync replica has the
        records (acks=all); returns the first offset. Never forwarded: a leader that moved (or a new epoch) is
        NOT_LEADER — for writers that own a partition's log while they lead it (the group coordinators' state)."""
        if not self.accepting:
            raise NotReady("the broker is recovering its storage, waiting for the metadata quorum, or stopping")
        partition = self.partitions.get((topic, index))
        if partition is None or not partition.is_leader or partition.leader_epoch != leader_epoch:
            raise NotLeader(f"this broker no longer leads {topic}/{index} at epoch {leader_epoch}")
        self.check_insync(self.registry.get(topic), partition)
        batch = batches.build_batch([(r.key, r.value, r.headers) for r in records], int(self.clock() * 1000))
        result = await self.submit(partition, batch)
        if partition.leader_epoch != leader_epoch:
            raise NotLeader(f"{topic}/{index} changed leader epoch during the write; it may or may not be committed")
        await self.await_replicated(partition, result.last_offset + 1)
        self.metrics.bytes_in.labels(topic).inc(len(batch))
        self.metrics.messages.labels(topic).inc(len(records))
        return result.base_offset

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

    # -- serving followers (leader side) ---------------------------------------------------------------------

    async def serve_replica_fetch(self, request: ReplicaFetchRequest) -> ReplicaFetchResponse:
        """A follower's fetch: record its progress (moving the high watermark), return batches past its log end.

        Followers read past the high watermark (that is how it advances) but never past what this leader has
        made durable, so nothing a failed fdatasync rolls back is ever replicated.
        """
        if not self.accepting:
            raise NotReady("the broker is recovering its storage, waiting for the metadata quorum, or stopping")
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
                record_fetch(progress, offset, plog.flushed_offset, now, partition.join_offset(request.replica_id))
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

    # -- gauges ----------------------------------------------------------------------------------------------

    def collect_gauges(self) -> Iterable[Metric]:
        """Replication health. Each leader counts its own under-replicated partitions (sum over brokers for the
        cluster); offline partitions are counted by the metadata leader only, so the sum is the cluster's."""
        partitions = gauge("goqueue_partitions", "Partitions held by this broker.")
        partitions.add_metric([], len(self.partitions))
        raft = self.membership.raft
        is_metadata_leader = raft is not None and raft.is_leader()
        leader = gauge("goqueue_raft_leader", "1 on the broker that leads the metadata Raft group (the controller).")
        leader.add_metric([], 1.0 if is_metadata_leader else 0.0)
        under = gauge("goqueue_under_replicated_partitions",
                      "Partitions led here with a replica out of the ISR (not counting new replicas still copying).")
        view = self.membership.view
        under.add_metric([], sum(1 for key, p in self.partitions.items() if p.is_leader
                                 and (meta := view.partition(*key)) is not None and under_replicated(meta)))
        offline = gauge("goqueue_offline_partitions",
                        "Partitions without a leader (reported by the metadata leader) or corrupt here.")
        leaderless = 0
        if is_metadata_leader:
            leaderless = sum(1 for t in self.membership.state["topics"].values()
                             for p in t["partition_state"].values() if p["leader"] is None)
        offline.add_metric([], leaderless + len(self.offline))
        isr = gauge("goqueue_partition_isr_size", "In-sync replicas of partitions led here.", ["topic", "partition"])
        for (topic, index), partition in list(self.partitions.items()):
            if partition.is_leader:
                isr.add_metric([topic, str(index)], len(partition.isr))
        alive = gauge("goqueue_cluster_brokers_alive", "Brokers this broker sees connected to the metadata quorum.")
        alive.add_metric([], len(self.membership.alive_brokers()) if raft is not None else 0)
        depth = gauge("goqueue_write_queue_depth", "Appends waiting for the writer thread.")
        depth.add_metric([], self._writer.queue_depth)
        return [partitions, leader, under, offline, isr, alive, depth]


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

