"""The operator's progress metrics: what the planners' steps say about a roll, a resize and a scaling, and how the
per-cluster reports add up in the gauges the operator dashboard draws (goqueue_operator_*_pending,
procedures_in_progress, procedures_blocked)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from goqueue_operator.brokers import CheckResult
from goqueue_operator.metrics import OperatorMetrics, Progress
from goqueue_operator.observed import ClaimFacts, PodFacts
from goqueue_operator.progress import resize_progress, roll_progress, scale_action, scale_progress
from goqueue_operator.resize.plan import ResizeKind, ResizeView, next_resize_step
from goqueue_operator.roller.plan import RollFacts, RollRecord, RollView, StepKind, next_roll_step
from goqueue_operator.scaling.plan import ScaleKind, ScaleView, next_scale_step, with_held

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def samples(metrics: OperatorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def gauge(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def pod(ordinal: int, revision: str) -> PodFacts:
    return PodFacts(name=f"goqueue-{ordinal}", ordinal=ordinal, uid=f"uid-{ordinal}", ip=f"127.0.0.{ordinal + 2}",
                    ready=True, deleting=False, revision=revision, version="0.1.0")


def roll(*revisions: str) -> RollView:
    return RollView(pods=tuple(pod(i, r) for i, r in enumerate(revisions)), replicas=len(revisions),
                    update_revision="new", revision_current=True, resize_pending=frozenset(), record=RollRecord(),
                    now=NOW, facts=RollFacts().with_leader(0))


def claim(ordinal: int, capacity: str, requested: str = "2Gi", pending: bool = False) -> ClaimFacts:
    return ClaimFacts(name=f"goqueue-data-goqueue-{ordinal}", ordinal=ordinal, requested=requested,
                      capacity=capacity, resize_pending=pending, storage_class="standard")


def resize(*claims: ClaimFacts, expandable: bool | None = True) -> ResizeView:
    return ResizeView(target="2Gi", statefulset_present=True, statefulset_deleting=False, template_size="2Gi",
                      claims=claims, storage_class="standard", expandable=expandable,
                      class_problem="" if expandable else "StorageClass standard does not allow volume expansion")


def scale(desired: int, current: int, pods: int, **kw: object) -> ScaleView:
    return ScaleView(desired=desired, current=current, ready=pods, pods=pods, auto_drain=False,
                     rebalance_on_scale_up=False, phase=None, now=NOW, **kw)  # type: ignore[arg-type]


def test_a_roll_counts_the_brokers_still_to_restart() -> None:
    view = roll("old", "old", "new")
    step = next_roll_step(view)
    assert step.kind is StepKind.CHECK_PRE_RESTART  # the planner asks before restarting: still under way
    assert roll_progress(view, step) == Progress(active=True, blocked=False, pending=2)
    done = roll("new", "new", "new")
    assert roll_progress(done, next_roll_step(done)) == Progress(active=False)


def test_brokers_left_while_a_restarted_broker_is_awaited() -> None:
    """The step's own pending list is empty during this wait; the count must not drop to 0 mid-roll."""
    view = roll("old", "old", "new")
    view = RollView(**{**view.__dict__, "pods": (*view.pods[:2], replace(view.pods[2], ready=False)),
                       "record": RollRecord(current_pod="goqueue-2", step="Restarting")})
    step = next_roll_step(view)
    assert (step.kind, step.code) == (StepKind.WAIT, "AwaitingRestartedBroker")
    assert step.pending == ()
    assert roll_progress(view, step) == Progress(active=True, blocked=False, pending=2)


def test_a_blocked_roll_is_blocked_and_still_pending() -> None:
    view = roll("old", "new", "new")
    facts = view.facts.with_check(StepKind.CHECK_PRE_RESTART, "goqueue-0", CheckResult.unavailable("404"))
    view = RollView(**{**view.__dict__, "facts": facts})
    step = next_roll_step(view)
    assert step.kind is StepKind.BLOCKED
    assert roll_progress(view, step) == Progress(active=True, blocked=True, pending=1)


def test_a_resize_counts_claims_not_yet_grown_filesystem_included() -> None:
    expanding = resize(claim(0, "2Gi"), claim(1, "1Gi"), claim(2, "1Gi"))
    assert next_resize_step(expanding).kind is ResizeKind.EXPANDING
    assert resize_progress(expanding, next_resize_step(expanding)) == Progress(active=True, pending=2)
    restarting = resize(claim(0, "2Gi"), claim(1, "2Gi", pending=True), claim(2, "2Gi"))
    assert next_resize_step(restarting).kind is ResizeKind.RESTARTING
    assert resize_progress(restarting, next_resize_step(restarting)) == Progress(active=True, pending=1)
    done = resize(claim(0, "2Gi"), claim(1, "2Gi"))
    assert resize_progress(done, next_resize_step(done)) == Progress(active=False)


def test_a_refused_resize_is_blocked_not_under_way() -> None:
    refused = resize(claim(0, "1Gi", requested="1Gi"), expandable=False)
    step = next_resize_step(refused)
    assert step.kind is ResizeKind.REFUSED
    assert resize_progress(refused, step) == Progress(active=False, blocked=True, pending=1)


def test_scaling_up_and_a_refused_scale_down() -> None:
    up = scale(desired=5, current=3, pods=3)
    step = next_scale_step(up)
    assert scale_progress(up, step) == Progress(active=True, pending=2)
    assert scale_action(up, step) == "ScalingUp"
    down = with_held(scale(desired=3, current=5, pods=5), 3, CheckResult.failed("holds 4 replicas"))
    down = with_held(down, 4, CheckResult.passed())
    step = next_scale_step(down)
    assert step.kind is ScaleKind.REFUSED
    assert scale_progress(down, step) == Progress(active=True, blocked=True, pending=2)
    assert scale_action(down, step) is None  # refusing changes nothing
    steady = scale(desired=3, current=3, pods=3)
    assert scale_progress(steady, next_scale_step(steady)) == Progress(active=False)
    assert scale_action(steady, next_scale_step(steady)) is None


def test_reports_add_up_over_clusters_and_a_finished_cluster_leaves_the_sum() -> None:
    metrics = OperatorMetrics()
    for procedure in ("roll", "resize", "scale"):  # exported as 0 before any cluster reports
        assert gauge(metrics, "goqueue_operator_procedures_in_progress", procedure=procedure) == 0
    metrics.report("roll", "uid-a", Progress(active=True, pending=2))
    metrics.report("roll", "uid-b", Progress(active=True, blocked=True, pending=3))
    assert gauge(metrics, "goqueue_operator_roll_brokers_pending") == 5
    assert gauge(metrics, "goqueue_operator_procedures_in_progress", procedure="roll") == 2
    assert gauge(metrics, "goqueue_operator_procedures_blocked", procedure="roll") == 1
    metrics.report("roll", "uid-a", Progress(active=True, pending=1))  # a report replaces, never adds
    metrics.report("roll", "uid-b", Progress(active=False))
    assert gauge(metrics, "goqueue_operator_roll_brokers_pending") == 1
    assert gauge(metrics, "goqueue_operator_procedures_in_progress", procedure="roll") == 1
    assert gauge(metrics, "goqueue_operator_procedures_blocked", procedure="roll") == 0
    metrics.report("scale", "uid-a", Progress(active=True, pending=2))
    metrics.forget("uid-a")
    assert gauge(metrics, "goqueue_operator_roll_brokers_pending") == 0
    assert gauge(metrics, "goqueue_operator_scale_brokers_pending") == 0
    assert gauge(metrics, "goqueue_operator_procedures_in_progress", procedure="scale") == 0


def test_counters_start_at_zero_for_every_label_the_executors_use() -> None:
    """increase() needs a 0 before the first action; the label values must be the executors' own."""
    exported = samples(OperatorMetrics())
    roll_steps = {v for (name, labels), _ in exported.items() if name == "goqueue_operator_rollout_steps_total"
                  for k, v in labels if k == "step"}
    assert roll_steps == {StepKind.TRANSFER_LEADERSHIP.value, StepKind.RESTART.value, StepKind.CAUGHT_UP.value,
                          StepKind.BLOCKED.value}
    resize_steps = {dict(labels)["step"] for (name, labels), _ in exported.items()
                    if name == "goqueue_operator_procedure_steps_total" and dict(labels)["procedure"] == "resize"}
    assert resize_steps == {ResizeKind.PATCH_CLAIMS.value, ResizeKind.RECREATE.value}
    scale_steps = {dict(labels)["step"] for (name, labels), _ in exported.items()
                   if name == "goqueue_operator_procedure_steps_total" and dict(labels)["procedure"] == "scale"}
    assert scale_steps >= {ScaleKind.DRAIN.value, ScaleKind.REBALANCE.value}
    assert gauge(OperatorMetrics(), "goqueue_operator_reconciles_total", kind="GoQueueTopic", result="error") == 0
