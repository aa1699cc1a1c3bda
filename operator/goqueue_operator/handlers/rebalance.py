"""GoQueueRebalance: propose, wait for approval, execute, follow, stop (rebalance/plan.py decides, rebalance/
execute.py acts). Reconciled on create, update (spec or annotation), resume, and by a timer every
`drift_interval_s` while moves run, so progress is read from the brokers and a restarted operator carries on.

No finalizer: the moves are the brokers' metadata and finish without the operator; deleting a GoQueueRebalance
does not stop them (annotate goqueue.io/rebalance=stop first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from goqueue.errors import GoQueueError
from goqueue_operator import GROUP, VERSION
from goqueue_operator.context import OperatorContext
from goqueue_operator.handlers.fresh import reconcile_fresh
from goqueue_operator.handlers.reconciler import find_broker, previous_conditions, translate
from goqueue_operator.kube import JSON, ObjectRef
from goqueue_operator.rebalance.execute import Outcome, consumed_first, observe, perform
from goqueue_operator.rebalance.plan import Phase, StepKind, next_rebalance_step, ready_condition
from goqueue_operator.rebalance.view import REBALANCE_ANNOTATION, RebalanceView
from goqueue_operator.settings import OperatorSettings
from goqueue_operator.status.conditions import Condition, render_conditions, transitions
from goqueue_operator.status.patch import merge_patch
from goqueue_operator.status.remedies import Subject, is_failure, warning_message
from goqueue_operator.views import ObjectMeta, SpecError

KIND = "GoQueueRebalance"
REBALANCE = (GROUP, VERSION, "goqueuerebalances")
STEPS_PER_RECONCILE = 2  # a proposal made with spec.approved executes in the same reconcile


async def reconcile_rebalance(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await reconcile_fresh(memo, KIND, body, _reconcile)


async def _reconcile(ctx: OperatorContext, body: JSON) -> None:
    now = datetime.now(UTC)
    about = ObjectRef.of(body)
    try:
        view = RebalanceView.from_body(body)
    except SpecError as exc:
        meta = ObjectMeta.from_body(body)
        await _write(ctx, body, meta, Phase.NOT_READY, Condition("Ready", False, "InvalidSpec", str(exc)), {}, now,
                     about)
        raise kopf.PermanentError(f"invalid {KIND}: {exc}") from exc
    first = next_rebalance_step(view, None)
    if first.kind in (StepKind.IDLE, StepKind.AWAIT):  # nothing to ask the brokers
        if first.consume_annotation:
            await _remove_annotation(ctx, view)
        if view.meta.generation != (body.get("status") or {}).get("observedGeneration"):
            outcome = await perform(first, view, None, None, now, _no_persist, _no_consume)
            await _write(ctx, body, view.meta, outcome.phase, outcome.ready, {}, now, about)
        return
    target = await find_broker(ctx, view.meta.namespace, view.cluster_name)
    if target.url is None:
        # A rebalance in progress stays Rebalancing: its moves carry on in the brokers without us.
        phase = Phase.REBALANCING if view.record.phase == Phase.REBALANCING else Phase.NOT_READY
        await _write(ctx, body, view.meta, phase, ready_condition(phase, target.reason, target.message), {}, now,
                     about)
        raise kopf.TemporaryError(target.message, delay=ctx.settings.retry_delay_s)
    client = ctx.client(target.url, target.tls, target.credentials)

    async def persist(fragment: JSON) -> None:
        await ctx.kube.patch_status(KIND, view.meta.namespace, view.meta.name, fragment)

    async def consume() -> None:
        await _remove_annotation(ctx, view)

    for _ in range(STEPS_PER_RECONCILE):
        try:
            observed = None
            if view.record.phase == Phase.REBALANCING and view.record.proposal is not None:
                observed = await observe(client, view.record.proposal)  # the brokers' word, every time
            step = next_rebalance_step(view, observed)
            outcome = await perform(step, view, client, observed, now, persist, consume)
        except GoQueueError as exc:
            ready, retry = translate(exc)
            phase = Phase.REBALANCING if view.record.phase == Phase.REBALANCING else Phase.NOT_READY
            await _write(ctx, body, view.meta, phase, ready_condition(phase, ready.reason, ready.message), {}, now,
                         about)
            if retry or phase == Phase.REBALANCING:
                raise kopf.TemporaryError(ready.message, delay=ctx.settings.retry_delay_s) from exc
            return
        body = await _apply(ctx, body, view, outcome, now, about)
        if step.consume_annotation:
            if not consumed_first(step, view):  # a stop: removed once acted on
                await _remove_annotation(ctx, view)
            body = {**body, "metadata": {**body["metadata"], "annotations": {
                k: v for k, v in (body["metadata"].get("annotations") or {}).items() if k != REBALANCE_ANNOTATION}}}
        view = RebalanceView.from_body(body)
        if step.kind is not StepKind.PROPOSE or next_rebalance_step(view, None).kind is not StepKind.EXECUTE:
            return


async def _no_persist(_: JSON) -> None:
    raise AssertionError("a waiting step persists nothing")


async def _no_consume() -> None:
    """The waiting steps' annotation is removed by the handler (IDLE: a moot approve or stop)."""


async def _remove_annotation(ctx: OperatorContext, view: RebalanceView) -> None:
    await ctx.kube.patch(KIND, view.meta.namespace, view.meta.name,
                         {"metadata": {"annotations": {REBALANCE_ANNOTATION: None}}})


async def _apply(ctx: OperatorContext, body: JSON, view: RebalanceView, outcome: Outcome, now: datetime,
                 about: ObjectRef) -> JSON:
    """Write the outcome, emit its Events; returns the body as it now is (for the next step)."""
    for reason, message, warning in outcome.events:
        await ctx.kube.emit_event(about, reason, message, warning=warning)
    status = await _write(ctx, body, view.meta, outcome.phase, outcome.ready, outcome.status, now, about)
    return {**body, "status": merge_patch(body.get("status") or {}, status)}


async def _write(ctx: OperatorContext, body: JSON, meta: ObjectMeta, phase: Phase, ready: Condition, fields: JSON,
                 now: datetime, about: ObjectRef) -> JSON:
    previous = previous_conditions(body)
    status = {**fields, "phase": phase.value, "observedGeneration": meta.generation,
              "conditions": render_conditions([ready], previous, generation=meta.generation, now=now)}
    await ctx.kube.patch_status(KIND, meta.namespace, meta.name, status)
    for changed in transitions([ready], previous):
        if is_failure(changed):  # say what is wrong and the fix
            await ctx.kube.emit_event(about, changed.reason, warning_message(
                Subject(KIND, meta.namespace, meta.name, body["spec"]["clusterRef"]["name"]), changed), warning=True)
    return status


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*REBALANCE, id="reconcile", registry=registry)(reconcile_rebalance)
    kopf.timer(*REBALANCE, id="progress", interval=settings.drift_interval_s, initial_delay=settings.drift_interval_s,
               registry=registry)(reconcile_rebalance)
