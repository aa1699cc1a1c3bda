"""The roller's executor: gather the facts the planner asks for, then perform at most one step. Straight-line.

Crash safety: before deleting a pod, the restart is recorded in status.rollout (currentPod, lastRestartAt) with a
direct status patch. An operator killed right after the deletion therefore resumes by waiting for that pod to be
Ready and caught up; one killed before the deletion finds the pod still on the old revision and plans it again.
The deletion carries the pod's uid as a precondition, so a re-created pod of the same name is never hit twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from goqueue_operator.brokers import BrokerAdmin, BrokerUnreachable, CheckResult
from goqueue_operator.kube import Kube, ObjectRef
from goqueue_operator.metrics import OperatorMetrics
from goqueue_operator.progress import roll_progress
from goqueue_operator.roller.plan import RollFacts, RollStep, RollView, StepKind, next_roll_step, roll_record

MAX_FACT_ROUNDS = 8  # leader, pre-restart check, transfer, caught-up: far fewer in practice
NO_BROKER = "no Ready broker answers admin calls"


@dataclass(frozen=True)
class RollOutcome:
    step: RollStep
    record: dict[str, object]  # status.rollout


async def _gather(step: RollStep, admin: BrokerAdmin | None, facts: RollFacts) -> RollFacts:
    if step.kind is StepKind.NEED_LEADER:
        if admin is None:
            return facts.with_leader(None, NO_BROKER)
        try:
            return facts.with_leader(await admin.metadata_leader())
        except BrokerUnreachable as exc:
            return facts.with_leader(None, str(exc))
    assert step.pod is not None, step
    if admin is None:
        return facts.with_check(step.kind, step.pod.name, CheckResult.unavailable(NO_BROKER))
    call = {StepKind.CHECK_PRE_RESTART: admin.pre_restart_check, StepKind.CHECK_CAUGHT_UP: admin.caught_up,
            StepKind.TRANSFER_LEADERSHIP: admin.transfer_leadership}[step.kind]
    return facts.with_check(step.kind, step.pod.name, await call(step.pod.ordinal))


async def advance_roll(view: RollView, *, admin: BrokerAdmin | None, kube: Kube, cluster: ObjectRef,
                       metrics: OperatorMetrics, facts: RollFacts | None = None) -> RollOutcome:
    """`facts`: what is already known this reconcile (the metadata leader, asked once for status too)."""
    facts = facts or RollFacts()
    view = replace(view, facts=facts)
    step = next_roll_step(view)
    for _ in range(MAX_FACT_ROUNDS):
        if not step.kind.needs_facts:
            break
        facts = await _gather(step, admin, facts)
        if step.kind is StepKind.TRANSFER_LEADERSHIP and step.pod is not None:
            result = facts.transferred[step.pod.name]
            metrics.rollout_steps.labels(step.kind.value).inc()
            await kube.emit_event(cluster, "LeadershipTransfer", f"moving leadership off {step.pod.name}: "
                                  f"{result.summary}", warning=not result.ok)
        step = next_roll_step(replace(view, facts=facts))
    assert not step.kind.needs_facts, f"the planner kept asking for facts: {step}"
    record = roll_record(view, step)

    if step.kind is StepKind.RESTART and step.pod is not None:
        # Intent first: a crash after the deletion must find the restart recorded.
        await kube.patch_status(cluster.kind, cluster.namespace, cluster.name, {"rollout": record})
        await kube.delete("Pod", cluster.namespace, step.pod.name, uid=step.pod.uid)
        await kube.emit_event(cluster, "BrokerRestarting", step.message)
    elif step.kind is StepKind.CAUGHT_UP:
        await kube.emit_event(cluster, "BrokerCaughtUp", step.message)
    elif step.kind is StepKind.BLOCKED and view.record.waiting_for != step.key:
        await kube.emit_event(cluster, "RollBlocked", step.message, warning=True)
    elif step.kind is StepKind.IDLE and view.record.step not in (None, StepKind.IDLE.value):
        await kube.emit_event(cluster, "RolloutComplete", "every broker runs the current revision")
    if step.kind in (StepKind.RESTART, StepKind.CAUGHT_UP, StepKind.BLOCKED):
        metrics.rollout_steps.labels(step.kind.value).inc()
    metrics.report("roll", cluster.uid, roll_progress(view, step))
    return RollOutcome(step, record)
