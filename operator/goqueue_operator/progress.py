"""What each procedure's step says about its progress, for the operator's metrics (pure).

The executors call these on the view and the step the planner chose and hand the result to `OperatorMetrics.report`.
"Brokers left to restart" is the planner's own restart_order (pods not on the update revision, or with a filesystem
resize pending), counted on every step: the step's `pending` is empty while a restarted broker is awaited, so a roll
of three would read 3, 0, 2, 0, 1, 0.
"""

from __future__ import annotations

from goqueue_operator.metrics import Progress
from goqueue_operator.quantity import at_least
from goqueue_operator.resize.plan import ResizeKind, ResizeStep, ResizeView
from goqueue_operator.roller.plan import RollStep, RollView, StepKind, restart_order
from goqueue_operator.scaling.plan import ScaleKind, ScaleStep, ScaleView

# Scale steps that mean a scaling is under way; a plain APPLY with no code keeps the replicas as they are.
_SCALING_CODES = {"ScalingUp", "ScalingDown", "DrainingBrokers", "DrainStalled", "Rebalancing"}


def roll_progress(view: RollView, step: RollStep) -> Progress:
    return Progress(active=step.kind is not StepKind.IDLE, blocked=step.kind is StepKind.BLOCKED,
                    pending=len(restart_order(view)))


def resize_progress(view: ResizeView, step: ResizeStep) -> Progress:
    """Pending: claims whose volume or filesystem is not yet at the target (what `kubectl get pvc` would show)."""
    if step.kind is not ResizeKind.REFUSED and not step.kind.resizing:
        return Progress(active=False)
    pending = sum(1 for c in view.claims if c.resize_pending or not at_least(c.capacity, view.target))
    return Progress(active=step.kind.resizing, blocked=step.kind is ResizeKind.REFUSED, pending=pending)


def scale_progress(view: ScaleView, step: ScaleStep) -> Progress:
    blocked = step.kind is ScaleKind.REFUSED or step.stalled
    active = blocked or step.code in _SCALING_CODES or step.phase != "Idle"
    return Progress(active=active, blocked=blocked, pending=abs(view.desired - view.pods) if active else 0)


def scale_action(view: ScaleView, step: ScaleStep) -> str | None:
    """The step label of goqueue_operator_procedure_steps_total for what the scale executor does now, if anything."""
    if step.kind in (ScaleKind.DRAIN, ScaleKind.REBALANCE):
        return step.kind.value
    if step.kind is ScaleKind.APPLY and step.code and view.current is not None and view.current != step.replicas:
        return step.code
    return None
