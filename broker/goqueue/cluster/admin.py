"""The operator's admin questions and actions, answered for the whole cluster from the metadata by any broker:
is a restart safe, is a broker caught up, move leadership or replicas off a broker, spread leadership evenly, and
replica reassignments: propose (goals in, moves with bytes to copy and an estimate out), execute with a throttle,
follow, cancel.

The plans are pure functions (`replication/controller.py`, `replication/reassignment.py`,
`replication/metadata.py`); this module feeds them the live metadata, liveness and partition sizes, and proposes
what they return. Executed moves are metadata state: the controller finishes them, whoever asked and wherever.
"""

from __future__ import annotations

import asyncio
import contextlib

from goqueue.cluster.membership import ClusterMembership
from goqueue.cluster.topics import TopicRegistry
from goqueue.config import Settings
from goqueue.errors import BrokerNotFound, GoQueueError, InvalidRequest
from goqueue.models import (
    PartitionReassignment,
    ReassignmentGoals,
    ReassignmentPlan,
    ReassignmentProgress,
    ReplicaMove,
    TopicPartition,
)
from goqueue.replication import commands
from goqueue.replication.controller import controlled_shutdown_plan, drain_plan, rebalance_plan
from goqueue.replication.metadata import MetadataConflict, restart_would_break
from goqueue.replication.reassignment import Goals, Move, PlanRefused, plan_moves, target_of, unmet_drains

SIZE_TIMEOUT_S = 2.0  # a leader that does not say its partition's size within this is reported, not waited for
PEER_ASKS = 16  # size questions to other brokers in flight at once (a plan or progress of thousands of partitions)


class ClusterAdmin:
    def __init__(self, settings: Settings, membership: ClusterMembership, registry: TopicRegistry) -> None:
        self.settings = settings
        self.membership = membership
        self.registry = registry
        self._peer_asks = asyncio.Semaphore(PEER_ASKS)  # held only around one peer call: never nested

    def _min_insync(self) -> dict[str, int]:
        default = self.settings.replication.min_insync_replicas
        return {name: min(meta.config.min_insync_replicas or default, meta.replication_factor)
                for name, meta in self.registry.topics.items()}

    def pre_restart_check(self, broker_id: int) -> list[str]:
        """Why restarting `broker_id` now would drop a partition below min.insync.replicas or lose the metadata
        quorum (empty: safe)."""
        self._check_known(broker_id)
        alive = self.membership.alive_brokers()
        state = self.membership.state
        quorum_size = max(len(state["brokers"]), len(self.membership.partner_addresses) + 1)
        return restart_would_break(state, broker_id, self._min_insync(), quorum_alive=len(alive),
                                   quorum_size=quorum_size)

    def caught_up(self, broker_id: int) -> list[str]:
        """Why `broker_id` is not yet fully back (empty: it is in the quorum and in every ISR it belongs to)."""
        self._check_known(broker_id)
        reasons = [] if broker_id in self.membership.alive_brokers() else [
            f"broker {broker_id} is not connected to the quorum"]
        for name, topic in sorted(self.membership.state["topics"].items()):
            for index, partition in sorted(topic["partition_state"].items()):
                if broker_id in partition["replicas"] and broker_id not in partition["isr"]:
                    reasons.append(f"{name}/{index}: not in ISR {partition['isr']}")
        return reasons

    def held(self, broker_id: int) -> tuple[int, int]:
        """(replicas, leaderships) `broker_id` holds."""
        replicas = leaders = 0
        for topic in self.membership.state["topics"].values():
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
        for command in controlled_shutdown_plan(self.membership.state, broker_id, self.membership.alive_brokers()):
            await self.membership.propose_quietly(command)
        return [f"{name}/{index}: no other live in-sync replica"
                for name, topic in sorted(self.membership.state["topics"].items())
                for index, partition in sorted(topic["partition_state"].items()) if partition["leader"] == broker_id]

    async def drain(self, broker_id: int) -> tuple[int, list[str]]:
        """Move leadership, then every replica, off `broker_id` (new replicas copy first: call again until it holds
        none); returns the replicas it still holds, and those that cannot move and why."""
        await self.transfer_leadership(broker_id)
        alive = self.membership.alive_brokers()
        for command in drain_plan(self.membership.state, broker_id, alive):
            await self.membership.propose_quietly(command)
        stuck = [f"{name}/{index}: every other live broker already holds a replica "
                 f"(replication factor {topic['replication_factor']}, {len(alive - {broker_id})} other live brokers)"
                 for name, topic in sorted(self.membership.state["topics"].items())
                 for index, partition in sorted(topic["partition_state"].items())
                 if broker_id in target_of(partition) and set(alive) - {broker_id} <= set(target_of(partition))]
        return self.held(broker_id)[0], stuck

    async def rebalance(self) -> int:
        plan = rebalance_plan(self.membership.state, self.membership.alive_brokers())
        for command in plan:
            await self.membership.propose_quietly(command)
        return len(plan)

    # -- reassignments -------------------------------------------------------------------------------------------

    async def propose_reassignment(self, goals: ReassignmentGoals) -> ReassignmentPlan:
        """The moves that meet `goals`, with the bytes each copies (the leaders' partition sizes)."""
        wanted = Goals(balance=goals.balance, drain=frozenset(goals.drain_brokers),
                       add=frozenset(goals.add_brokers), replication_factor=dict(goals.replication_factor))
        alive = self.membership.alive_brokers()
        try:
            moves = plan_moves(self.membership.state, wanted, alive)
        except PlanRefused as exc:
            raise InvalidRequest(str(exc)) from exc
        sizes = await asyncio.gather(*(self._size(m) for m in moves))
        reasons = [f"{m.topic}/{m.partition}: size unknown (its leader did not answer)"
                   for m, size in zip(moves, sizes, strict=True) if size is None and m.adding]
        reasons += unmet_drains(self.membership.state, wanted, moves, alive)
        planned = [ReplicaMove(topic=m.topic, partition=m.partition, replicas=list(m.replicas), target=list(m.target),
                               version=m.version, bytes_to_copy=(size or 0) * len(m.adding))
                   for m, size in zip(moves, sizes, strict=True)]
        total = sum(m.bytes_to_copy for m in planned)
        return ReassignmentPlan(moves=planned, bytes_to_copy=total, throttle=goals.throttle,
                                estimated_s=None if not goals.throttle else total / goals.throttle, reasons=reasons)

    async def _size(self, move: Move) -> int | None:
        """The partition's size on its leader (what a new replica copies); None when unknown."""
        if not move.adding:
            return 0
        leader = self.membership.view.leader(move.topic, move.partition)
        if leader is None:
            return None
        with contextlib.suppress(GoQueueError, OSError, KeyError, ValueError):
            async with self._peer_asks:
                answer = await self.membership.peers.partition_offsets(
                    self.membership.broker_url(leader), move.topic, move.partition, None, timeout_s=SIZE_TIMEOUT_S)
            return int(answer["sizeBytes"])
        return None

    async def execute_reassignment(self, moves: list[ReplicaMove], throttle: int | None) -> tuple[int, list[str]]:
        """Begin each move (compare-and-set on the version it was planned from), the throttle first so no copy
        starts unthrottled; returns how many began and why the others did not."""
        if not moves:
            return 0, []
        await self.membership.propose(commands.set_replication_throttle(throttle))
        started, reasons = 0, []
        for move in moves:
            try:
                await self.membership.propose(commands.begin_reassignment(
                    move.topic, move.partition, target=move.target, expected_version=move.version))
                started += 1
            except MetadataConflict as exc:
                reasons.append(f"{move.topic}/{move.partition}: {exc}")
        if not started and not self.progress().partitions:
            await self.membership.propose(commands.set_replication_throttle(None))  # nothing moves: none in force
        return started, reasons

    def progress(self) -> ReassignmentProgress:
        moving = [PartitionReassignment(
            topic=name, partition=int(index), replicas=list(p["replicas"]), target=list(p["target_replicas"]),
            adding=list(p.get("adding_replicas", ())), removing=list(p.get("removing_replicas", ())),
            isr=list(p["isr"]), leader=p["leader"],
            copying=[b for b in p.get("adding_replicas", ()) if b not in p["isr"]])
            for name, topic in sorted(self.membership.state["topics"].items())
            for index, p in sorted(topic["partition_state"].items()) if "target_replicas" in p]
        return ReassignmentProgress(done=not moving, throttle=self.membership.view.replication_throttle,
                                    partitions=moving)

    async def progress_with_bytes(self) -> ReassignmentProgress:
        """`progress()` plus what each moving partition copies and has copied: the leader's size times the new
        replicas, and what the new replicas hold (each asked, with a short timeout, at most PEER_ASKS at once;
        unknown stays none)."""
        answer = self.progress()
        counted = await asyncio.gather(*(self._copy_bytes(p) for p in answer.partitions))
        partitions = [p.model_copy(update={"bytes_to_copy": to_copy, "bytes_copied": copied})
                      for p, (to_copy, copied) in zip(answer.partitions, counted, strict=True)]
        known = [c for c in counted if c[0] is not None and c[1] is not None]
        complete = len(known) == len(counted)
        return answer.model_copy(update={
            "partitions": partitions,
            "bytes_to_copy": sum(c[0] or 0 for c in known) if complete else None,
            "bytes_copied": sum(c[1] or 0 for c in known) if complete else None})

    async def _copy_bytes(self, moving: PartitionReassignment) -> tuple[int | None, int | None]:
        if not moving.adding:
            return 0, 0
        original = tuple(b for b in moving.replicas if b not in moving.adding)  # `replicas` is the union now
        leader_size = await self._size(Move(moving.topic, moving.partition, original, tuple(moving.target), 0))
        if leader_size is None:
            return None, None
        held = await asyncio.gather(*(self._replica_size(b, moving.topic, moving.partition) for b in moving.adding))
        copied = None if any(h is None for h in held) else sum(min(h or 0, leader_size) for h in held)
        return leader_size * len(moving.adding), copied

    async def _replica_size(self, broker_id: int, topic: str, partition: int) -> int | None:
        with contextlib.suppress(GoQueueError, OSError, KeyError, ValueError):
            async with self._peer_asks:
                return await self.membership.peers.replica_size(self.membership.broker_url(broker_id), topic,
                                                                partition, timeout_s=SIZE_TIMEOUT_S)
        return None

    async def cancel_reassignment(self, which: list[TopicPartition]) -> tuple[int, list[str]]:
        """Send the named moving partitions (none named: all) back to their original replicas."""
        wanted = {(tp.topic, tp.partition) for tp in which}
        moving = {(p.topic, p.partition) for p in self.progress().partitions}
        reasons = [f"{topic}/{index}: not being reassigned" for topic, index in sorted(wanted - moving)]
        cancelled = 0
        for topic, index in sorted(moving & wanted if wanted else moving):
            version = self.membership.state["topics"][topic]["partition_state"][index]["version"]
            try:
                await self.membership.propose(commands.cancel_reassignment(topic, index, expected_version=version))
                cancelled += 1
            except MetadataConflict as exc:
                reasons.append(f"{topic}/{index}: {exc}")
        return cancelled, reasons

    def _check_known(self, broker_id: int) -> None:
        if broker_id not in self.membership.state["brokers"]:
            raise BrokerNotFound(f"broker {broker_id} is not a member of this cluster "
                                 f"(members: {sorted(self.membership.state['brokers'])})")
