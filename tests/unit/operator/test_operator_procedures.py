"""Storage expansion and scaling planners (pure), step by step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from goqueue_operator.brokers import CheckResult
from goqueue_operator.observed import ClaimFacts
from goqueue_operator.quantity import InvalidQuantity, at_least, parse_quantity
from goqueue_operator.resize.plan import (
    ResizeKind,
    ResizeView,
    claim_size_to_apply,
    next_resize_step,
    storage_record,
)
from goqueue_operator.scaling.plan import ScaleKind, ScaleView, next_scale_step, scaling_record, with_held

pytestmark = pytest.mark.unit


# -- quantities --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("left", "right", "expected"), [
    ("1Gi", "1024Mi", True), ("1000Mi", "1Gi", False), ("2Gi", "1Gi", True), ("1G", "1Gi", False),
    ("1.5Gi", "1536Mi", True), ("10Gi", "10Gi", True), (None, "1Gi", False),
])
def test_quantities_compare_exactly(left: str | None, right: str, expected: bool) -> None:
    assert at_least(left, right) is expected


def test_invalid_quantity() -> None:
    with pytest.raises(InvalidQuantity):
        parse_quantity("ten gigs")
    assert parse_quantity("1e3") == 1000


# -- storage expansion -------------------------------------------------------------------------------------------

def claim(ordinal: int, requested: str = "1Gi", capacity: str | None = None, pending: bool = False) -> ClaimFacts:
    return ClaimFacts(name=f"goqueue-data-goqueue-{ordinal}", ordinal=ordinal, requested=requested,
                      capacity=capacity or requested, resize_pending=pending, storage_class="standard")


def resize(target: str = "2Gi", template: str | None = "1Gi", claims: tuple[ClaimFacts, ...] | None = None,
           **kw: object) -> ResizeView:
    values: dict[str, object] = {"statefulset_present": template is not None, "statefulset_deleting": False,
                                 "storage_class": "standard"}
    values.update(kw)
    return ResizeView(target=target, template_size=template,
                      claims=claims if claims is not None else (claim(0), claim(1), claim(2)),
                      **values)  # type: ignore[arg-type]


def test_no_resize_while_the_spec_matches() -> None:
    view = resize(target="1Gi")
    assert next_resize_step(view).kind is ResizeKind.IDLE
    assert claim_size_to_apply(view) == "1Gi"


def test_a_new_cluster_gets_the_spec_size() -> None:
    view = resize(target="5Gi", template=None, claims=())
    assert next_resize_step(view).kind is ResizeKind.IDLE
    assert claim_size_to_apply(view) == "5Gi"


def test_the_storage_class_is_checked_first_and_a_refusal_changes_nothing() -> None:
    assert next_resize_step(resize()).kind is ResizeKind.NEED_CLASS
    refused = next_resize_step(resize(expandable=False, class_problem="StorageClass slow does not allow volume "
                                                                      "expansion"))
    assert refused.kind is ResizeKind.REFUSED
    assert "does not allow volume expansion" in refused.message
    assert "nothing was changed" in refused.message
    assert claim_size_to_apply(resize(expandable=False)) == "1Gi"  # the StatefulSet keeps its template


def test_claims_are_patched_and_a_larger_claim_is_accepted() -> None:
    view = resize(expandable=True, claims=(claim(0), claim(1, "5Gi"), claim(2)))
    step = next_resize_step(view)
    assert step.kind is ResizeKind.PATCH_CLAIMS
    assert step.claims == ("goqueue-data-goqueue-0", "goqueue-data-goqueue-2")


def test_then_the_statefulset_is_recreated_with_orphaned_pods() -> None:
    grown = (claim(0, "2Gi"), claim(1, "2Gi"), claim(2, "5Gi"))
    step = next_resize_step(resize(claims=grown, expandable=True))
    assert step.kind is ResizeKind.RECREATE
    assert next_resize_step(resize(claims=grown, statefulset_deleting=True)).kind is ResizeKind.AWAIT_DELETION
    gone = resize(claims=grown, template=None, statefulset_present=False)
    assert next_resize_step(gone).kind is ResizeKind.IDLE
    assert claim_size_to_apply(gone) == "2Gi"  # the re-created StatefulSet gets the new template


def test_volumes_grow_then_pods_restart_where_the_filesystem_waits() -> None:
    growing = (claim(0, "2Gi", capacity="1Gi"), claim(1, "2Gi"), claim(2, "2Gi"))
    step = next_resize_step(resize(template="2Gi", claims=growing))
    assert step.kind is ResizeKind.EXPANDING
    assert step.message == "2/3 claims at 2Gi"
    pending = (claim(0, "2Gi", capacity="1Gi", pending=True), claim(1, "2Gi"), claim(2, "2Gi"))
    restarting = next_resize_step(resize(template="2Gi", claims=pending))
    assert restarting.kind is ResizeKind.RESTARTING
    assert restarting.claims == ("goqueue-data-goqueue-0",)
    assert restarting.kind.resizing
    done = resize(template="2Gi", claims=(claim(0, "2Gi"), claim(1, "2Gi"), claim(2, "2Gi")))
    assert next_resize_step(done).kind is ResizeKind.IDLE
    assert storage_record(done, next_resize_step(done)) == {"size": "2Gi", "targetSize": "2Gi", "phase": "Idle",
                                                             "message": None}


# -- scaling -----------------------------------------------------------------------------------------------------

def scale(desired: int, current: int | None, **kw: object) -> ScaleView:
    values: dict[str, object] = {"ready": current or 0, "pods": current or 0, "auto_drain": False,
                                 "rebalance_on_scale_up": False, "phase": None}
    values.update(kw)
    return ScaleView(desired=desired, current=current, **values)  # type: ignore[arg-type]


HOLDS = CheckResult.failed("broker 2 holds 4 partition replicas (1 as leader)")
EMPTY = CheckResult.passed()


def test_a_new_cluster_and_a_scale_up_apply_at_once() -> None:
    assert next_scale_step(scale(3, None)).replicas == 3
    up = next_scale_step(scale(5, 3))
    assert (up.kind, up.replicas, up.code) == (ScaleKind.APPLY, 5, "ScalingUp")


def test_scale_to_zero_stops_every_broker_without_questions() -> None:
    step = next_scale_step(scale(0, 3))
    assert (step.kind, step.replicas, step.code) == (ScaleKind.APPLY, 0, "Stopped")
    assert "claims and data are kept" in step.message


def test_scale_down_asks_each_departing_broker() -> None:
    view = scale(3, 5)
    assert next_scale_step(view).brokers == (3,)
    assert next_scale_step(with_held(view, 3, EMPTY)).brokers == (4,)
    step = next_scale_step(with_held(with_held(view, 3, EMPTY), 4, EMPTY))
    assert (step.kind, step.replicas, step.phase) == (ScaleKind.APPLY, 3, "Verifying")


def test_scale_down_is_refused_while_departing_brokers_hold_replicas() -> None:
    step = next_scale_step(with_held(scale(2, 3), 2, HOLDS))
    assert (step.kind, step.replicas, step.code) == (ScaleKind.REFUSED, 3, "DepartingBrokersHoldReplicas")
    assert "autoDrain" in step.message


def test_scale_down_drains_first_when_allowed() -> None:
    step = next_scale_step(with_held(scale(2, 3, auto_drain=True), 2, HOLDS))
    assert (step.kind, step.replicas, step.brokers) == (ScaleKind.DRAIN, 3, (2,))


def test_a_drain_that_does_not_finish_is_reported_stalled_and_keeps_trying() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    view = with_held(scale(2, 3, auto_drain=True, phase="Draining", since=now - timedelta(seconds=700), now=now), 2,
                     HOLDS)
    step = next_scale_step(view)
    assert (step.kind, step.code, step.stalled) == (ScaleKind.DRAIN, "DrainStalled", True)
    fresh = replace(view, since=now - timedelta(seconds=30))
    assert not next_scale_step(fresh).stalled
    assert scaling_record(fresh, next_scale_step(fresh))["since"] == "2025-12-31T23:59:30Z"


def test_scale_down_refused_when_the_check_is_unavailable() -> None:
    missing = CheckResult.unavailable("the broker does not implement GET …/replicas yet (HTTP 404)")
    step = next_scale_step(with_held(scale(2, 3, auto_drain=True), 2, missing))
    assert (step.kind, step.replicas, step.code) == (ScaleKind.REFUSED, 3, "ScaleDownCheckUnavailable")


def test_verifying_until_the_departed_pods_are_gone() -> None:
    assert next_scale_step(scale(2, 2, pods=3, phase="Verifying")).phase == "Verifying"
    assert next_scale_step(scale(2, 2, pods=2, phase="Verifying")).phase == "Idle"


def test_rebalance_after_a_scale_up_once_every_broker_is_ready() -> None:
    waiting = next_scale_step(scale(5, 3, ready=3, rebalance_on_scale_up=True))
    assert (waiting.kind, waiting.replicas, waiting.phase) == (ScaleKind.APPLY, 5, "Rebalancing")
    view = scale(5, 5, ready=5, rebalance_on_scale_up=True, phase="Rebalancing")
    assert next_scale_step(view).kind is ScaleKind.REBALANCE
    assert next_scale_step(replace(view, phase="Idle")).kind is ScaleKind.APPLY
