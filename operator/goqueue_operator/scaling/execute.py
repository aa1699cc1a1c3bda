"""Scaling executor: ask departing brokers what they hold, drain or rebalance when planned. Straight-line."""

from __future__ import annotations

from dataclasses import dataclass, replace

from goqueue_operator.brokers import BrokerAdmin, CheckResult
from goqueue_operator.kube import Kube, ObjectRef
from goqueue_operator.metrics import OperatorMetrics
from goqueue_operator.progress import scale_action, scale_progress
from goqueue_operator.scaling.plan import (
    ScaleKind,
    ScaleStep,
    ScaleView,
    next_scale_step,
    scaling_record,
    with_drained,
    with_held,
)

NO_BROKER = "no Ready broker answers admin calls"


@dataclass(frozen=True)
class ScaleOutcome:
    step: ScaleStep
    record: dict[str, object]  # status.scaling


async def advance_scaling(view: ScaleView, *, admin: BrokerAdmin | None, kube: Kube,
                          cluster: ObjectRef, metrics: OperatorMetrics | None = None) -> ScaleOutcome:
    step = next_scale_step(view)
    while step.kind is ScaleKind.NEED_HELD:
        broker = step.brokers[0]
        result = await admin.held_replicas(broker) if admin else CheckResult.unavailable(NO_BROKER)
        view = with_held(view, broker, result)
        step = next_scale_step(view)
    if step.kind is ScaleKind.DRAIN:
        for broker in step.brokers:
            result = await admin.drain(broker) if admin else CheckResult.unavailable(NO_BROKER)
            view = with_drained(view, broker, result)
        step = replace(step, message=step.message + "; " + "; ".join(
            f"broker {b}: {view.drained[b].summary}" for b in step.brokers))
        if step.message != view.message:  # an Event when the drain's progress changes, not every reconcile
            await kube.emit_event(cluster, step.code, step.message, warning=step.stalled)
    elif step.kind is ScaleKind.REBALANCE:
        result = await admin.rebalance() if admin else CheckResult.unavailable(NO_BROKER)
        await kube.emit_event(cluster, "Rebalance", f"rebalance after scale-up: {result.summary}",
                              warning=not result.ok)
    elif step.kind is ScaleKind.REFUSED and view.phase != step.phase:
        await kube.emit_event(cluster, step.code, step.message, warning=True)
    elif step.kind is ScaleKind.APPLY and step.code and view.current != step.replicas:
        await kube.emit_event(cluster, step.code, step.message or f"scaling to {step.replicas}")
    if metrics is not None:
        if (action := scale_action(view, step)) is not None:
            metrics.procedure_steps.labels("scale", action).inc()
        metrics.report("scale", cluster.uid, scale_progress(view, step))
    return ScaleOutcome(step, scaling_record(view, step))
