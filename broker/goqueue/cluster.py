"""This broker's membership in the cluster: metadata Raft, controller duties, ISR upkeep, follower fetching.

`Cluster` runs beside `Broker` and owns every background loop of replication, all in the server's task group:
* `raft` — PySyncObj metadata (`replication/raft.py`); a single broker is a one-member group;
* the controller loop (only while this broker is the Raft leader): elects partition leaders for dead brokers,
  restores preferred leaders (`replication/controller.py`);
* the ISR loop (for partitions this broker leads): shrinks and expands the in-sync set (`replication/isr.py`);
* one follower fetcher per leader broker this broker follows: truncates to the leader's epoch boundary, then
  pulls batches, appends them, fdatasyncs, and reports progress with its next fetch.

Metadata changes applied by Raft (in PySyncObj's thread) are handed to the event loop, where `Broker.reconcile`
opens, re-roles or deletes local replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from goqueue.config import Settings
from goqueue.errors import BrokerNotFound, FencedLeaderEpoch, GoQueueError, NotLeader
from goqueue.partition import Partition, Role
from goqueue.replication import isr as isr_rules
from goqueue.replication.controller import controlled_shutdown_plan, drain_plan, plan_leadership, rebalance_plan
from goqueue.replication.epochs import UNDEFINED
from goqueue.replication.metadata import Command, MetadataConflict, State, restart_would_break
from goqueue.replication.peers import PeerClient, ReplicaFetchRequest
from goqueue.replication.raft import MetadataFactory, MetadataGroup, RaftMetadata
from goqueue.storage.batch import BatchHeader, InvalidBatch, iter_headers

if TYPE_CHECKING:
    from goqueue.broker import Broker

log = logging.getLogger(__name__)

CONTROLLER_TICK_S = 0.25
ISR_TICK_S = 1.0
FETCH_BACKOFF_S = 0.5
READY_POLL_S = 0.05


class Cluster:
    def __init__(self, settings: Settings, broker: Broker) -> None:
        self.settings = settings
        self.broker = broker
        self.broker_id = settings.broker_id()
        self.self_address, self.partner_addresses = settings.raft_addresses()
        self.peers = PeerClient()
        self.raft: MetadataGroup | None = None
        # How `start_raft` makes the metadata group: PySyncObj, always, in a broker. Unit tests replace it with an
        # in-memory one-member group (tests/unit/metadata_double.py) so a broker in a unit test opens no socket.
        self.metadata_factory: MetadataFactory = RaftMetadata
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetchers: dict[int, asyncio.Task[None]] = {}
        self._alive_since: dict[int, float] = {}
        self._stopping = False
        self.directory_id = ""  # this broker's data volume (`adopt_storage`)

    # -- lifecycle -----------------------------------------------------------------------------------------------

    async def start_raft(self) -> None:
        """Join the metadata Raft group (PySyncObj binds and replays its journal in its own thread)."""
        self._loop = asyncio.get_running_loop()
        bind = f"{self.settings.broker.host}:{self.settings.broker.raft_port}"
        self.raft = await asyncio.to_thread(
            self.metadata_factory, self.self_address, self.partner_addresses, self.settings.storage.wal_dir,
            self.settings.cluster.password, self._on_applied, bind)
        log.info("raft.started", extra={"self": self.self_address, "partners": self.partner_addresses})

    async def wait_metadata_ready(self) -> None:
        """Until the metadata is caught up with a leader (needs a quorum); logs while it waits."""
        assert self.raft is not None
        next_log = time.monotonic() + 5
        while not self.raft.is_ready():
            if time.monotonic() > next_log:
                log.warning("raft.waiting_for_quorum", extra={"partners": self.partner_addresses,
                                                              "connected": sorted(self.raft.connected_partners())})
                next_log = time.monotonic() + 10
            await asyncio.sleep(READY_POLL_S)
        await self.propose_retrying({"op": "barrier", "broker": self.broker_id}, attempts=240)

    async def adopt_storage(self, directory_id: str) -> None:
        """Before any replica opens: a data volume other than the one the metadata knows for this broker (a new
        PVC, a wiped disk) holds none of its old copies, so the broker leaves every ISR first — none of them can
        then be elected with fewer records than were acknowledged."""
        self.directory_id = directory_id
        registered = self.state["brokers"].get(self.broker_id, {}).get("directory_id")
        if registered is None or registered == directory_id:
            return  # a first start, or metadata from before volumes had an identity
        stranded = await self.propose_retrying({"op": "replace_storage", "broker": self.broker_id,
                                                "directory_id": directory_id})
        log.warning("broker.storage_replaced", extra={"previous": registered, "now": directory_id})
        if stranded:
            log.error("broker.storage_replaced_sole_replica", extra={
                "partitions": stranded, "detail": "this broker was their only in-sync replica; their records are "
                                                  "gone with the old volume"})

    async def register(self) -> None:
        """Record this broker's addresses in the metadata (again when they changed, e.g. a new pod IP)."""
        entry = {"op": "register_broker", "id": self.broker_id, "host": self.settings.advertised_host(),
                 "http_port": self.settings.broker.port, "grpc_port": self.settings.broker.grpc_port,
                 "raft_address": self.self_address, "zone": self.settings.broker.zone,
                 "directory_id": self.directory_id}
        current = self.state["brokers"].get(self.broker_id)
        if current != {k: v for k, v in entry.items() if k not in ("op", "id")}:
            await self.propose_retrying(entry)

    def start_loops(self) -> None:
        for name, loop in (("controller", self._controller_loop), ("isr", self._isr_loop)):
            self._spawn(loop(), name)

    async def stop(self) -> None:
        """Controlled shutdown: hand leadership away, stop fetching, leave Raft."""
        self._stopping = True
        if self.raft is not None and self.raft.is_ready():
            try:
                await asyncio.wait_for(self._hand_over_leadership(), self.settings.broker.shutdown_grace_s / 2)
            except (TimeoutError, GoQueueError) as exc:
                log.warning("cluster.handover_incomplete", extra={"error": str(exc)})
        for task in [*self._tasks, *self._fetchers.values()]:
            task.cancel()
        for task in [*self._tasks, *self._fetchers.values()]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.peers.close()
        if self.raft is not None:
            await asyncio.to_thread(self.raft.destroy_synchronous)

    def _spawn(self, coroutine: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster.task_died", extra={"task": task.get_name()}, exc_info=task.exception())

    # -- metadata ------------------------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        assert self.raft is not None, "metadata is not started"
        return self.raft.state

    def _on_applied(self, _command: Command, _result: Any) -> None:
        """PySyncObj thread: a command was applied here; the event loop reconciles local replicas."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.broker.schedule_reconcile)

    async def propose(self, command: Command) -> Any:
        assert self.raft is not None
        return await self.raft.propose(command)

    async def propose_retrying(self, command: Command, attempts: int = 20) -> Any:
        """For this broker's own bookkeeping: retry while there is no leader yet."""
        for attempt in range(attempts):
            try:
                return await self.propose(command)
            except MetadataConflict:
                raise
            except GoQueueError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.25)
        return None

    def broker_url(self, broker_id: int) -> str:
        broker = self.state["brokers"].get(broker_id)
        if broker is None:
            raise NotLeader(f"broker {broker_id} has not registered its address yet", leader=broker_id)
        return f"http://{_host_for_url(broker['host'])}:{broker['http_port']}"

    def alive_brokers(self) -> set[int]:
        """This broker plus those whose Raft connection is up, as seen from here."""
        assert self.raft is not None
        connected = self.raft.connected_partners()
        alive = {self.broker_id}
        for broker_id, broker in self.state["brokers"].items():
            if broker["raft_address"] in connected:
                alive.add(broker_id)
        now = time.monotonic()
        for broker_id in alive:
            self._alive_since.setdefault(broker_id, now)
        for broker_id in set(self._alive_since) - alive:
            del self._alive_since[broker_id]
        return alive

    def metadata_leader_id(self) -> int | None:
        assert self.raft is not None
        address = self.raft.leader_address()
        for broker_id, broker in self.state["brokers"].items():
            if broker["raft_address"] == address:
                return int(broker_id)
        return None

    # -- controller ----------------------------------------------------------------------------------------------

    async def _controller_loop(self) -> None:
        assert self.raft is not None
        while True:
            await asyncio.sleep(CONTROLLER_TICK_S)
            if not self.raft.is_leader() or self._stopping:
                continue
            alive = self.alive_brokers()
            plan = plan_leadership(self.state, alive, self._alive_since, time.monotonic(),
                                   self.settings.replication.preferred_leader_delay_s)
            for command in plan:
                await self._propose_quietly(command)

    async def _propose_quietly(self, command: Command) -> None:
        try:
            result = await self.propose(command)
        except (MetadataConflict, GoQueueError) as exc:
            log.info("controller.proposal_refused", extra={"command": command["op"], "reason": str(exc)})
            return
        if command["op"] == "elect_leader":
            log.info("partition.leader_elected", extra={
                "topic": command["topic"], "partition": command["partition"], "leader": command["leader"],
                "epoch": result["leader_epoch"], "isr": result["isr"]})

    async def _hand_over_leadership(self) -> None:
        alive = self.alive_brokers()
        ends = {key: {b: p.log_end_offset for b, p in partition.followers.items() if p.fetched}
                for key, partition in self.broker.partitions.items() if partition.is_leader}
        for command in controlled_shutdown_plan(self.state, self.broker_id, alive, ends):
            await self._propose_quietly(command)

    # -- the operator's admin questions (any broker answers for the whole cluster) ---------------------------------

    def _min_insync(self) -> dict[str, int]:
        default = self.settings.replication.min_insync_replicas
        return {name: min(t["config"].get("minInsyncReplicas") or default, t["replication_factor"])
                for name, t in self.state["topics"].items()}

    def pre_restart_check(self, broker_id: int) -> list[str]:
        """Why restarting `broker_id` now would drop a partition below min.insync.replicas or lose the metadata
        quorum (empty: safe)."""
        self._check_known(broker_id)
        alive = self.alive_brokers()
        return restart_would_break(self.state, broker_id, self._min_insync(), quorum_alive=len(alive),
                                   quorum_size=max(len(self.state["brokers"]), len(self.partner_addresses) + 1))

    def caught_up(self, broker_id: int) -> list[str]:
        """Why `broker_id` is not yet fully back (empty: it is in the quorum and in every ISR it belongs to)."""
        self._check_known(broker_id)
        reasons = [] if broker_id in self.alive_brokers() else [f"broker {broker_id} is not connected to the quorum"]
        for name, topic in sorted(self.state["topics"].items()):
            for index, partition in sorted(topic["partition_state"].items()):
                if broker_id in partition["replicas"] and broker_id not in partition["isr"]:
                    reasons.append(f"{name}/{index}: not in ISR {partition['isr']}")
        return reasons

    def held(self, broker_id: int) -> tuple[int, int]:
        """(replicas, leaderships) `broker_id` holds."""
        replicas = leaders = 0
        for topic in self.state["topics"].values():
            for partition in topic["partition_state"].values():
                replicas += broker_id in partition["replicas"]
                leaders += partition["leader"] == broker_id
        return replicas, leaders

    async def transfer_leadership(self, broker_id: int) -> list[str]:
        """Move every partition leadership off `broker_id` to a live in-sync replica; returns what could not move.

        Metadata (Raft) leadership is not transferable with PySyncObj: it moves by election when the broker
        restarts, which is why the operator restarts the metadata leader last.
        """
        self._check_known(broker_id)
        for command in controlled_shutdown_plan(self.state, broker_id, self.alive_brokers()):
            await self._propose_quietly(command)
        return [f"{name}/{index}: no other live in-sync replica"
                for name, topic in sorted(self.state["topics"].items())
                for index, partition in sorted(topic["partition_state"].items()) if partition["leader"] == broker_id]

    async def drain(self, broker_id: int) -> tuple[int, list[str]]:
        """Move leadership, then every replica, off `broker_id`; returns the replicas it still holds and why."""
        await self.transfer_leadership(broker_id)
        alive = self.alive_brokers()
        for command in drain_plan(self.state, broker_id, alive):
            await self._propose_quietly(command)
        stuck = [f"{name}/{index}: every other live broker already holds a replica "
                 f"(replication factor {topic['replication_factor']}, {len(alive - {broker_id})} other live brokers)"
                 for name, topic in sorted(self.state["topics"].items())
                 for index, partition in sorted(topic["partition_state"].items())
                 if broker_id in partition["replicas"] and set(alive) - {broker_id} <= set(partition["replicas"])]
        return self.held(broker_id)[0], stuck

    async def rebalance(self) -> int:
        plan = rebalance_plan(self.state)
        for command in plan:
            await self._propose_quietly(command)
        return len(plan)

    def _check_known(self, broker_id: int) -> None:
        if broker_id not in self.state["brokers"]:
            raise BrokerNotFound(f"broker {broker_id} is not a member of this cluster "
                                 f"(members: {sorted(self.state['brokers'])})")

    # -- ISR upkeep (partition leaders) ----------------------------------------------------------------------------

    async def _isr_loop(self) -> None:
        lag_max = self.settings.replication.replica_lag_max_s
        while True:
            await asyncio.sleep(ISR_TICK_S)
            for partition in list(self.broker.partitions.values()):
                if not partition.is_leader or partition.isr_change_pending:
                    continue
                proposed = isr_rules.next_isr(self.broker_id, partition.isr, partition.replicas, partition.followers,
                                              partition.log.high_watermark, time.monotonic(), lag_max)
                if proposed is None:
                    continue
                partition.isr_change_pending = True
                previous = list(partition.isr)
                command = {"op": "change_isr", "topic": partition.topic, "partition": partition.index,
                           "leader_epoch": partition.leader_epoch, "expected_version": partition.version,
                           "isr": proposed}
                try:
                    await self.propose(command)
                    log.info("partition.isr_changed", extra={
                        "topic": partition.topic, "partition": partition.index, "from": previous, "to": proposed})
                    self.broker.metrics.isr_changes.labels(
                        "shrink" if len(proposed) < len(previous) else "expand").inc()
                except (MetadataConflict, GoQueueError) as exc:
                    partition.isr_change_pending = False
                    log.info("partition.isr_change_refused", extra={"topic": partition.topic,
                                                                    "partition": partition.index, "reason": str(exc)})

    # -- follower fetching ---------------------------------------------------------------------------------------

    def ensure_fetchers(self) -> None:
        """One fetcher task per leader broker that leads a partition this broker follows."""
        leaders = {p.leader_id for p in self.broker.partitions.values()
                   if p.role is Role.FOLLOWER and p.leader_id is not None}
        for leader_id in leaders:
            task = self._fetchers.get(leader_id)
            if task is None or task.done():
                task = asyncio.create_task(self._fetch_from(leader_id), name=f"fetch-{leader_id}")
                task.add_done_callback(self._task_done)  # an unexpected death is logged, never silent
                self._fetchers[leader_id] = task

    def _following(self, leader_id: int) -> list[Partition]:
        return [p for p in self.broker.partitions.values() if p.role is Role.FOLLOWER and p.leader_id == leader_id]

    async def _fetch_from(self, leader_id: int) -> None:
        replication = self.settings.replication
        while not self._stopping:
            partitions = self._following(leader_id)
            if not partitions:
                return
            try:
                url = self.broker_url(leader_id)
                for partition in partitions:
                    if partition.needs_truncation:
                        await self._truncate_to_leader(url, partition)
                request = ReplicaFetchRequest(
                    replica_id=self.broker_id, max_wait_ms=int(replication.fetch_max_wait_s * 1000),
                    max_bytes=replication.fetch_max_bytes,
                    partitions=[(p.topic, p.index, p.log.log_end_offset, p.leader_epoch) for p in partitions])
                response = await self.peers.replica_fetch(url, request)
                await self._apply_fetch(partitions, response.partitions)
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
            _, end = await self.peers.epoch_end_offset(leader_url, partition.topic, partition.index, epoch)
            target = plog.log_end_offset if end == UNDEFINED else end
        if target < plog.log_end_offset:
            log.warning("replica.truncated", extra={"topic": partition.topic, "partition": partition.index,
                                                    "from": plog.log_end_offset, "to": target, "epoch": epoch})
            await asyncio.to_thread(plog.truncate_to, target)
            partition.epochs.truncate_from_end(target)
        partition.needs_truncation = False

    async def _apply_fetch(self, partitions: list[Partition],
                           answers: list[tuple[str, int, str | None, int, int, bytes]]) -> None:
        by_key = {(p.topic, p.index): p for p in partitions}
        appended: list[tuple[Partition, bytes, int]] = []
        for topic, index, error, hwm, _log_start, data in answers:
            partition = by_key.get((topic, index))
            if partition is None or partition.role is not Role.FOLLOWER:
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
            for header in _headers(data):
                partition.epochs.assign(header.leader_epoch, header.base_offset)
            plog = partition.log
            plog.high_watermark = max(plog.high_watermark, min(hwm, plog.log_end_offset))
            partition.notify()

    # -- read-outs -----------------------------------------------------------------------------------------------

    def members(self) -> list[dict[str, Any]]:
        alive = self.alive_brokers()
        leader = self.metadata_leader_id()
        return [{"id": int(broker_id), "host": b["host"], "httpPort": b["http_port"], "grpcPort": b["grpc_port"],
                 "raftAddress": b["raft_address"], "zone": b["zone"], "alive": broker_id in alive,
                 "metadataLeader": broker_id == leader}
                for broker_id, b in sorted(self.state["brokers"].items())]


def _append_and_sync(appended: list[tuple[Partition, bytes, int]]) -> None:
    """Worker thread: append each partition's fetched batches, then fdatasync each log once."""
    for partition, data, _ in appended:
        if data:
            partition.log.append_replicated(data)
    for partition, data, _ in appended:
        if data:
            partition.log.flush()


def _headers(data: bytes) -> list[BatchHeader]:
    return [header for _, header in iter_headers(data)]


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host

