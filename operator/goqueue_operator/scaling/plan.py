"""Scaling planner: how many brokers the StatefulSet gets this reconcile, and why. Pure.

- Up: applied at once (new brokers join); with spec.scaling.rebalanceOnScaleUp the brokers are asked to spread
  replicas onto the new ones once every broker is Ready.
- To 0 (the runbook's emergency stop): applied at once. Every broker stops; claims (and so data) are kept, and
  scaling back brings the same brokers back on the same data.
- Down to n > 0: brokers n.. are departing. Each is asked whether it still hosts partition replicas. If none
  does, the scale-down is applied (phase Verifying until their pods are gone). If some do: with
  spec.scaling.autoDrain they are drained first (phase Draining) and the scale-down waits; without it the
  scale-down is refused (condition ScaleDownBlocked, an Event) and the StatefulSet keeps its replicas. A check
  that cannot be made (endpoint missing, broker unreachable) refuses too: replicas are never dropped blind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from goqueue_operator.brokers import CheckResult, CheckStatus
from goqueue_operator.observed import ClusterObservation
from goqueue_operator.status.conditions import timestamp
from goqueue_operator.views import ClusterView


class ScaleKind(StrEnum):
    APPLY = "Apply"            # set the StatefulSet's replicas
    NEED_HELD = "NeedHeld"     # fact: does a departing broker hold replicas?
    DRAIN = "Draining"         # action: drain the departing brokers that hold replicas; keep the replicas
    REFUSED = "Refused"        # keep the replicas: departing brokers hold data and no drain is allowed
    REBALANCE = "Rebalancing"  # action: spread replicas onto new brokers, then apply


@dataclass(frozen=True)
class ScaleView:
    desired: int
    current: int | None  # the StatefulSet's replicas; None when it does not exist
    ready: int
    pods: int
    auto_drain: bool
    rebalance_on_scale_up: bool
    phase: str | None
    message: str | None = None       # the previous reconcile's message (an Event only when it changes)
    since: datetime | None = None    # when the current phase began
    now: datetime | None = None
    stall_timeout_s: float = 600.0
    held: Mapping[int, CheckResult] = field(default_factory=dict)
    drained: Mapping[int, CheckResult] = field(default_factory=dict)


@dataclass(frozen=True)
class ScaleStep:
    kind: ScaleKind
    replicas: int
    brokers: tuple[int, ...] = ()
    code: str = ""
    message: str = ""
    phase: str = "Idle"
    stalled: bool = False  # a drain that has not finished within the stall timeout (still draining)


def scale_view_for(cluster: ClusterView, observation: ClusterObservation, now: datetime) -> ScaleView:
    record = cluster.record.scaling
    return ScaleView(desired=cluster.spec.replicas, current=observation.statefulset_replicas,
                     ready=len(observation.ready_pods), pods=len(observation.pods),
                     auto_drain=cluster.spec.scaling.auto_drain,
                     rebalance_on_scale_up=cluster.spec.scaling.rebalance_on_scale_up,
                     phase=record.phase, message=record.message, since=record.since, now=now,
                     stall_timeout_s=cluster.spec.rollout.stall_timeout_seconds)


def with_held(view: ScaleView, broker: int, result: CheckResult) -> ScaleView:
    return replace(view, held={**view.held, broker: result})


def with_drained(view: ScaleView, broker: int, result: CheckResult) -> ScaleView:
    return replace(view, drained={**view.drained, broker: result})


def next_scale_step(view: ScaleView) -> ScaleStep:
    if view.current is None or view.desired >= view.current or view.desired == 0:
        return _up_or_stop(view)
    departing = tuple(range(view.desired, view.current))
    unknown = [b for b in departing if b not in view.held]
    if unknown:
        return ScaleStep(ScaleKind.NEED_HELD, view.current, (unknown[0],))
    unavailable = [b for b in departing if view.held[b].status is CheckStatus.UNAVAILABLE]
    if unavailable:
        reasons = "; ".join(view.held[b].summary for b in unavailable)
        return ScaleStep(ScaleKind.REFUSED, view.current, tuple(unavailable), "ScaleDownCheckUnavailable",
                         f"cannot tell whether departing brokers hold replicas, so the scale-down to "
                         f"{view.desired} waits: {reasons}", "Refused")
    holding = tuple(b for b in departing if not view.held[b].ok)
    if not holding:
        return ScaleStep(ScaleKind.APPLY, view.desired, departing, "ScalingDown",
                         f"scaling down to {view.desired}: brokers {_ids(departing)} hold no replicas",
                         "Verifying")
    held = "; ".join(view.held[b].summary for b in holding)
    if not view.auto_drain:
        return ScaleStep(ScaleKind.REFUSED, view.current, holding, "DepartingBrokersHoldReplicas",
                         f"scale-down to {view.desired} refused: {held}. Move their replicas away, or set "
                         "spec.scaling.autoDrain: true to let the operator drain them", "Refused")
    step = ScaleStep(ScaleKind.DRAIN, view.current, holding, "DrainingBrokers",
                     f"draining brokers {_ids(holding)} before scaling down to {view.desired}: {held}", "Draining")
    if view.phase == "Draining" and view.since is not None and view.now is not None:
        waited = (view.now - view.since).total_seconds()
        if waited > view.stall_timeout_s:
            return replace(step, code="DrainStalled", stalled=True, message=(
                f"{step.message} (draining for {waited:.0f}s, over the {view.stall_timeout_s:.0f}s stall timeout; "
                "still trying: the brokers' answers above say what prevents it)"))
    return step


def _up_or_stop(view: ScaleView) -> ScaleStep:
    if view.desired == 0:
        return ScaleStep(ScaleKind.APPLY, 0, (), "Stopped",
                         "scaled to 0: every broker stops; claims and data are kept", "Idle")
    growing = view.current is not None and view.desired > view.current
    if view.rebalance_on_scale_up and (growing or view.phase == ScaleKind.REBALANCE.value):
        if view.ready < view.desired:
            return ScaleStep(ScaleKind.APPLY, view.desired, (), "ScalingUp",
                             f"waiting for {view.desired} Ready brokers before rebalancing", "Rebalancing")
        return ScaleStep(ScaleKind.REBALANCE, view.desired, (), "Rebalancing",
                         "asking the brokers to spread replicas onto the new brokers", "Idle")
    if view.phase == "Verifying" and view.pods > view.desired:
        return ScaleStep(ScaleKind.APPLY, view.desired, (), "ScalingDown",
                         f"waiting for {view.pods - view.desired} departing broker pod(s) to stop", "Verifying")
    if growing:
        return ScaleStep(ScaleKind.APPLY, view.desired, (), "ScalingUp",
                         f"scaling up from {view.current} to {view.desired} brokers")
    return ScaleStep(ScaleKind.APPLY, view.desired)


def scaling_record(view: ScaleView, step: ScaleStep) -> dict[str, object]:
    since = view.since if view.phase == step.phase and view.since is not None else view.now
    return {"phase": step.phase, "from": view.current, "to": view.desired, "message": step.message or None,
            "since": timestamp(since) if since else None}


def _ids(brokers: tuple[int, ...]) -> str:
    return ", ".join(str(b) for b in brokers)
