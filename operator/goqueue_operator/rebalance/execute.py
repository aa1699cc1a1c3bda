"""Performs one GoQueueRebalance step (rebalance/plan.py decides which) against the brokers: propose, execute,
read progress, stop. Straight-line: every branch lives in the planner.

Who may call it: handlers/rebalance.py, inside the object's lock, in the event loop (the client's calls run in a
thread).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from goqueue.client.http import GoQueueClient
from goqueue.errors import TopicNotFound
from goqueue.models import ReassignmentGoals, ReplicaMove, TopicInfo, TopicPartition
from goqueue_operator.brokers import in_thread
from goqueue_operator.rebalance.plan import (
    Observed,
    Phase,
    RebalanceStep,
    StepKind,
    Tracked,
    awaiting_message,
    progress_fields,
    progress_message,
    proposal_phase,
    proposal_summary,
    ready_condition,
    track,
)
from goqueue_operator.rebalance.view import ProposalRecord, ProposedMove, RebalanceView
from goqueue_operator.status.conditions import Condition, timestamp

JSON = dict[str, Any]
Persist = Callable[[JSON], Awaitable[None]]
Consume = Callable[[], Awaitable[None]]  # removes the goqueue.io/rebalance annotation


@dataclass
class Outcome:
    """What a step leaves: the phase, the Ready condition, the status fields it changes, its Events."""

    phase: Phase
    ready: Condition
    status: JSON = field(default_factory=dict)
    events: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, message, warning)


async def observe(client: GoQueueClient, proposal: ProposalRecord) -> Observed:
    """Where the brokers have the proposal's partitions: moving (and to where), else their replicas now."""
    progress = await in_thread(client.reassignment_progress)
    moving = {(p.topic, p.partition): tuple(p.target) for p in progress.partitions}
    copied = {(p.topic, p.partition): p.bytes_copied for p in progress.partitions if p.bytes_copied is not None}
    replicas: dict[tuple[str, int], tuple[int, ...]] = {}
    for topic in sorted({m.topic for m in proposal.partitions}):
        info = await _describe(client, topic)
        if info is not None:  # a topic deleted meanwhile: its moves are lost
            replicas.update({(topic, p.partition): tuple(p.replicas) for p in info.partition_details})
    return Observed(moving=moving, replicas=replicas, bytes_copied=copied)


async def _describe(client: GoQueueClient, topic: str) -> TopicInfo | None:
    try:
        return await in_thread(lambda: client.describe_topic(topic))
    except TopicNotFound:
        return None


def consumed_first(step: RebalanceStep, view: RebalanceView) -> bool:
    """An approve or refresh the step consumes is removed before it acts: a crash after the step recorded its phase
    then loses the approval (approve again) rather than leaving it to approve a later, unreviewed proposal. A stop
    is removed after (sending back twice is harmless; a stop lost would let the moves run)."""
    return step.consume_annotation and view.action != "stop"


async def perform(step: RebalanceStep, view: RebalanceView, client: GoQueueClient | None,
                  observed: Observed | None, now: datetime, persist: Persist, consume: Consume) -> Outcome:
    """`client` None: only for the steps that ask the brokers nothing (Await, Idle, Stop before Rebalancing).
    `consume` is called first when `consumed_first`; otherwise removing the annotation is the caller's."""
    if consumed_first(step, view):
        await consume()
    if step.kind is StepKind.AWAIT:
        return Outcome(Phase.PROPOSAL_READY, _keep_reason(view, Phase.PROPOSAL_READY, step))
    if step.kind is StepKind.IDLE:
        phase = Phase(view.record.phase or Phase.READY)  # Ready or Stopped stays as it is
        return Outcome(phase, _keep_reason(view, phase, step))
    if step.kind is StepKind.STOP and view.record.phase != Phase.REBALANCING:  # a proposal dropped: none moves
        return Outcome(Phase.STOPPED, ready_condition(Phase.STOPPED, step.reason, step.message), {},
                       [("RebalanceStopped", step.message, False)])
    assert client is not None
    if step.kind is StepKind.PROPOSE:
        return await _propose(step, view, client, now)
    if step.kind is StepKind.EXECUTE:
        return await _execute(step, view, client, now, persist)
    if step.kind is StepKind.STOP:
        return await _stop(step, view, client, observed, now)
    if step.kind is StepKind.TRACK:
        assert step.tracked is not None
        return Outcome(Phase.REBALANCING, ready_condition(Phase.REBALANCING, step.reason, step.message),
                       {"progress": progress_fields(step.tracked)})
    if step.kind is StepKind.COMPLETE:
        assert step.tracked is not None
        return Outcome(Phase.READY, ready_condition(Phase.READY, step.reason, step.message),
                       {"progress": {**progress_fields(step.tracked), "completedAt": timestamp(now)}},
                       [("RebalanceComplete", step.message, False)])
    raise AssertionError(f"unhandled step {step.kind}")


def _keep_reason(view: RebalanceView, phase: Phase, step: RebalanceStep) -> Condition:
    """A waiting step keeps the Ready condition it has (a StaleProposal reason stays until the next proposal)."""
    old = next((c for c in view.record.conditions if c.get("type") == "Ready"), None)
    if old is None:
        return ready_condition(phase, step.reason or phase.value, step.message)
    return ready_condition(phase, str(old.get("reason", "")), str(old.get("message", "")))


async def _propose(step: RebalanceStep, view: RebalanceView, client: GoQueueClient, now: datetime) -> Outcome:
    goals = view.spec.goals
    throttle = view.spec.throttle_bytes_per_second
    plan = await in_thread(lambda: client.plan_reassignment(ReassignmentGoals(
        balance=goals.balance, drain_brokers=goals.drain_brokers, add_brokers=goals.add_brokers,
        replication_factor=goals.replication_factors, throttle=throttle)))
    proposal = ProposalRecord(
        goals=view.goals_key, created_at=timestamp(now), moves=len(plan.moves), bytes_to_copy=plan.bytes_to_copy,
        throttle_bytes_per_second=throttle, estimated_seconds=plan.estimated_s, reasons=list(plan.reasons),
        partitions=[ProposedMove(topic=m.topic, partition=m.partition, replicas=m.replicas, target=m.target,
                                 version=m.version, bytes_to_copy=m.bytes_to_copy) for m in plan.moves])
    phase = proposal_phase(proposal)
    status: JSON = {"proposal": proposal.model_dump(by_alias=True, mode="json"), "progress": None}
    events: list[tuple[str, str, bool]] = []  # a StaleProposal's Warning comes with its condition (the handler)
    if phase is Phase.READY:
        message = "nothing to move: the goals are met"
        events.append(("NothingToMove", message, False))
        return Outcome(phase, ready_condition(phase, "NothingToMove", message), status, events)
    events.append(("ProposalReady", proposal_summary(proposal), False))
    stale = step.reason == "StaleProposal"
    message = (f"{step.message}; " if stale else "") + awaiting_message(view.meta.name, proposal)
    return Outcome(phase, ready_condition(phase, "StaleProposal" if stale else "AwaitingApproval", message),
                   status, events)


async def _execute(step: RebalanceStep, view: RebalanceView, client: GoQueueClient, now: datetime,
                   persist: Persist) -> Outcome:
    proposal = view.record.proposal
    assert proposal is not None
    resumed = view.record.progress is not None and view.record.phase == Phase.REBALANCING
    started_at = (view.record.progress.started_at if resumed and view.record.progress else None) or timestamp(now)
    empty = Tracked(total=proposal.moves, bytes_to_copy=proposal.bytes_to_copy)
    # Recorded before the brokers are asked: a restarted operator then knows a proposal may be running.
    await persist({"phase": Phase.REBALANCING.value, "progress": {
        **progress_fields(empty), "executed": False, "startedAt": started_at, "refused": []}})
    moves = [ReplicaMove(topic=m.topic, partition=m.partition, replicas=m.replicas, target=m.target,
                         version=m.version, bytes_to_copy=m.bytes_to_copy) for m in proposal.partitions]
    started = await in_thread(lambda: client.execute_reassignment(moves, proposal.throttle_bytes_per_second))
    observed = await observe(client, proposal)
    tracked = track(proposal.partitions, observed)
    progress = {**progress_fields(tracked), "executed": True, "startedAt": started_at,
                "refused": list(started.reasons)}
    throttle = (f"throttle {proposal.throttle_bytes_per_second} B/s" if proposal.throttle_bytes_per_second
                else "unthrottled")
    message = (f"{step.message}: {started.started} of {proposal.moves} moves begun ({throttle})"
               + (f"; refused: {'; '.join(started.reasons[:3])}" if started.reasons else ""))
    return Outcome(Phase.REBALANCING, ready_condition(Phase.REBALANCING, "Rebalancing", progress_message(tracked)),
                   {"progress": progress}, [("RebalanceStarted", message, False)])


async def _stop(step: RebalanceStep, view: RebalanceView, client: GoQueueClient, observed: Observed | None,
                now: datetime) -> Outcome:
    proposal = view.record.proposal
    assert proposal is not None
    tracked = track(proposal.partitions, observed or Observed())
    which = [TopicPartition(topic=topic, partition=index) for topic, index in tracked.moving]
    cancelled = await in_thread(lambda: client.cancel_reassignment(which)) if which else None
    sent_back = cancelled.cancelled if cancelled else 0
    message = (f"{step.message}: {sent_back} moving partitions sent back to their original replicas, "
               f"{len(tracked.done)} of {tracked.total} moves had completed")
    return Outcome(Phase.STOPPED, ready_condition(Phase.STOPPED, "Stopped", message),
                   {"progress": {**progress_fields(tracked), "completedAt": timestamp(now)}},
                   [("RebalanceStopped", message, False)])

