"""The roller's planner, case by case and through a whole simulated roll (pure: no cluster, no broker)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from goqueue_operator.brokers import CheckResult
from goqueue_operator.observed import PodFacts
from goqueue_operator.roller.plan import (
    RollFacts,
    RollRecord,
    RollStep,
    RollView,
    StepKind,
    next_roll_step,
    restart_order,
    roll_record,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OK = CheckResult.passed()
MISSING = CheckResult.unavailable("the broker does not implement GET /v1/admin/cluster/brokers/1/pre-restart-check "
                                  "yet (HTTP 404)")
NOT_YET = CheckResult.failed("orders/0: ISR [1] would fall below min.insync.replicas 2")


def pod(ordinal: int, revision: str = "old", ready: bool = True, deleting: bool = False) -> PodFacts:
    return PodFacts(name=f"goqueue-{ordinal}", ordinal=ordinal, uid=f"uid-{ordinal}", ip=f"127.0.0.{ordinal + 2}",
                    ready=ready, deleting=deleting, revision=revision, version="0.1.0")


def view(*pods: PodFacts, record: RollRecord | None = None, facts: RollFacts | None = None, **kw: object) -> RollView:
    defaults: dict[str, object] = {"replicas": len(pods), "update_revision": "new", "revision_current": True,
                                   "resize_pending": frozenset(), "now": NOW, "min_delay_s": 10.0,
                                   "stall_timeout_s": 600.0}
    defaults.update(kw)
    return RollView(pods=tuple(pods), record=record or RollRecord(), facts=facts or RollFacts(),
                    **defaults)  # type: ignore[arg-type]


def three_old() -> tuple[PodFacts, ...]:
    return pod(0), pod(1), pod(2)


def leader(n: int | None) -> RollFacts:
    return RollFacts().with_leader(n)


def test_nothing_to_do_when_every_pod_runs_the_update_revision() -> None:
    assert next_roll_step(view(pod(0, "new"), pod(1, "new"))).kind is StepKind.IDLE


def test_waits_until_the_statefulset_controller_has_seen_the_template() -> None:
    step = next_roll_step(view(*three_old(), revision_current=False))
    assert (step.kind, step.code) == (StepKind.WAIT, "StatefulSetUpdating")


def test_asks_for_the_metadata_leader_before_choosing() -> None:
    assert next_roll_step(view(*three_old())).kind is StepKind.NEED_LEADER


def test_highest_ordinal_first_and_the_leader_last() -> None:
    order = restart_order(view(*three_old(), facts=leader(2)))
    assert [p.name for p in order] == ["goqueue-1", "goqueue-0", "goqueue-2"]
    order = restart_order(view(*three_old(), facts=leader(0)))
    assert [p.name for p in order] == ["goqueue-2", "goqueue-1", "goqueue-0"]


def test_pre_restart_check_comes_before_any_restart() -> None:
    step = next_roll_step(view(*three_old(), facts=leader(2)))
    assert step.kind is StepKind.CHECK_PRE_RESTART
    assert step.pod is not None
    assert step.pod.name == "goqueue-1"


def test_restart_when_the_broker_says_it_is_safe() -> None:
    facts = leader(2).with_check(StepKind.CHECK_PRE_RESTART, "goqueue-1", OK)
    step = next_roll_step(view(*three_old(), facts=facts))
    assert step.kind is StepKind.RESTART
    assert step.pod is not None
    assert step.pod.name == "goqueue-1"
    assert step.pending == ("goqueue-1", "goqueue-0", "goqueue-2")


def test_a_missing_check_endpoint_blocks_and_is_never_success() -> None:
    facts = leader(2).with_check(StepKind.CHECK_PRE_RESTART, "goqueue-1", MISSING)
    step = next_roll_step(view(*three_old(), facts=facts))
    assert step.kind is StepKind.BLOCKED
    assert step.reason == "PreRestartCheckUnavailable"
    assert "HTTP 404" in step.message


def test_an_unsafe_restart_waits_then_blocks_after_the_stall_timeout() -> None:
    facts = leader(2).with_check(StepKind.CHECK_PRE_RESTART, "goqueue-1", NOT_YET)
    first = next_roll_step(view(*three_old(), facts=facts))
    assert (first.kind, first.code) == (StepKind.WAIT, "PreRestartCheckFailed")
    assert "min.insync.replicas" in first.message
    waited = RollRecord(step="Waiting", waiting_for=first.key, since=NOW - timedelta(seconds=601))
    stalled = next_roll_step(view(*three_old(), facts=facts, record=waited))
    assert stalled.kind is StepKind.BLOCKED
    assert stalled.reason == "StalledPreRestartCheckFailed"
    assert stalled.key == first.key  # the same wait: the stall clock keeps running, no flapping
    assert "never forcing" in stalled.message
    recent = RollRecord(step="Waiting", waiting_for=first.key, since=NOW - timedelta(seconds=30))
    assert next_roll_step(view(*three_old(), facts=facts, record=recent)).kind is StepKind.WAIT


def test_every_broker_must_be_ready_before_the_next_restart() -> None:
    step = next_roll_step(view(pod(0), pod(1, ready=False), pod(2), facts=leader(2)))
    assert (step.kind, step.code) == (StepKind.WAIT, "AwaitingReady")
    assert "goqueue-1" in step.message


def test_missing_or_deleting_pods_are_waited_for() -> None:
    assert next_roll_step(view(pod(0), pod(1), replicas=3)).code == "AwaitingPods"
    assert next_roll_step(view(pod(0), pod(1, deleting=True))).code == "AwaitingPods"


def test_pause_annotation_stops_before_any_check() -> None:
    step = next_roll_step(view(*three_old(), paused=True))
    assert step.kind is StepKind.PAUSED
    assert len(step.pending) == 3


def test_restarted_broker_must_be_ready_then_caught_up() -> None:
    record = RollRecord(current_pod="goqueue-1", step="Restarting", last_restart_at=NOW)
    not_ready = next_roll_step(view(pod(0), pod(1, "new", ready=False), pod(2), record=record, facts=leader(2)))
    assert (not_ready.kind, not_ready.code) == (StepKind.WAIT, "AwaitingRestartedBroker")
    ready = view(pod(0), pod(1, "new"), pod(2), record=record, facts=leader(2))
    assert next_roll_step(ready).kind is StepKind.CHECK_CAUGHT_UP
    behind = replace(ready, facts=ready.facts.with_check(StepKind.CHECK_CAUGHT_UP, "goqueue-1", NOT_YET))
    assert next_roll_step(behind).code == "CaughtUpCheckFailed"
    missing = replace(ready, facts=ready.facts.with_check(StepKind.CHECK_CAUGHT_UP, "goqueue-1", MISSING))
    assert next_roll_step(missing).reason == "CaughtUpCheckUnavailable"
    back = replace(ready, facts=ready.facts.with_check(StepKind.CHECK_CAUGHT_UP, "goqueue-1", OK))
    assert next_roll_step(back).kind is StepKind.CAUGHT_UP


def test_minimum_delay_after_a_broker_caught_up() -> None:
    record = RollRecord(last_caught_up_at=NOW - timedelta(seconds=4))
    step = next_roll_step(view(pod(0), pod(1, "new"), pod(2), record=record, facts=leader(2)))
    assert (step.kind, step.code) == (StepKind.WAIT, "MinimumDelay")
    later = RollRecord(last_caught_up_at=NOW - timedelta(seconds=11))
    assert next_roll_step(view(pod(0), pod(1, "new"), pod(2), record=later, facts=leader(2))).kind is (
        StepKind.CHECK_PRE_RESTART)


def test_leadership_moves_off_the_leader_before_it_restarts() -> None:
    pods = (pod(0, "new"), pod(1, "new"), pod(2))
    checked = leader(2).with_check(StepKind.CHECK_PRE_RESTART, "goqueue-2", OK)
    assert next_roll_step(view(*pods, facts=checked)).kind is StepKind.TRANSFER_LEADERSHIP
    moved = checked.with_check(StepKind.TRANSFER_LEADERSHIP, "goqueue-2", OK)
    assert next_roll_step(view(*pods, facts=moved)).kind is StepKind.RESTART
    refused = checked.with_check(StepKind.TRANSFER_LEADERSHIP, "goqueue-2", MISSING)
    assert next_roll_step(view(*pods, facts=refused)).reason == "LeadershipTransferUnavailable"


def test_unknown_leader_blocks_a_multi_broker_roll() -> None:
    step = next_roll_step(view(*three_old(), facts=RollFacts().with_leader(None, "cannot reach any broker")))
    assert (step.kind, step.reason) == (StepKind.BLOCKED, "LeaderUnknown")


def test_no_restart_while_the_metadata_group_elects() -> None:
    """Brokers that answer but name no leader are mid-election (seen after a restart in CI): a restart now could cost
    the quorum and "leader last" cannot be honoured, so the roll waits; a known leader lets it go on."""
    step = next_roll_step(view(*three_old(), facts=RollFacts().with_leader(None)))
    assert (step.kind, step.reason) == (StepKind.WAIT, "MetadataElection")
    assert next_roll_step(view(*three_old(), facts=leader(1))).kind is StepKind.CHECK_PRE_RESTART


def test_a_single_broker_needs_no_leader_but_still_its_check() -> None:
    assert next_roll_step(view(pod(0))).kind is StepKind.CHECK_PRE_RESTART


def test_filesystem_resize_is_a_reason_to_restart() -> None:
    step = next_roll_step(view(pod(0, "new"), pod(1, "new"), resize_pending=frozenset({1}),
                               facts=leader(0).with_check(StepKind.CHECK_PRE_RESTART, "goqueue-1", OK)))
    assert step.kind is StepKind.RESTART
    assert "filesystem resize" in step.message


def test_roll_record_persists_what_a_restarted_operator_needs() -> None:
    base = view(*three_old(), facts=leader(2))
    restart = RollStep(StepKind.RESTART, pod(1), "BrokerRestarting", "restarting", ("goqueue-1",))
    record = roll_record(base, restart)
    assert record["currentPod"] == "goqueue-1"
    assert record["lastRestartAt"] == "2026-01-01T12:00:00Z"
    done = roll_record(replace(base, record=RollRecord(current_pod="goqueue-1")), RollStep(StepKind.CAUGHT_UP, pod(1)))
    assert done["currentPod"] is None
    assert done["lastCaughtUpAt"] == "2026-01-01T12:00:00Z"
    wait = RollStep(StepKind.WAIT, None, "AwaitingReady", "x")
    earlier = NOW - timedelta(seconds=50)
    kept = roll_record(replace(base, record=RollRecord(waiting_for=wait.key, since=earlier)), wait)
    assert kept["since"] == "2026-01-01T11:59:10Z"
    blocked = roll_record(base, RollStep(StepKind.BLOCKED, None, "LeaderUnknown", "why"))
    assert blocked["blockedReason"] == "why"


def test_a_whole_roll_restarts_each_broker_once_in_order_with_checks() -> None:
    """Drive the planner against a simulated cluster: restarts happen one at a time, highest ordinal first, the
    leader last after a leadership transfer, each after a passing pre-restart check and the previous broker's
    caught-up check."""
    pods = {i: pod(i) for i in range(3)}
    metadata_leader = 2
    record = RollRecord()
    now = NOW
    log: list[str] = []
    for _ in range(100):
        facts = RollFacts().with_leader(metadata_leader)
        current = view(*pods.values(), record=record, facts=facts, now=now)
        step = next_roll_step(current)
        while step.kind.needs_facts:
            assert step.pod is not None
            log.append(f"{step.kind.value}:{step.pod.name}")
            if step.kind is StepKind.TRANSFER_LEADERSHIP:
                metadata_leader = 0
            facts = facts.with_check(step.kind, step.pod.name, OK)
            step = next_roll_step(replace(current, facts=facts))
        if step.kind is StepKind.IDLE:
            break
        new = roll_record(current, step)
        if step.kind is StepKind.RESTART:
            assert step.pod is not None
            log.append(f"restart:{step.pod.name}")
            pods[step.pod.ordinal] = pod(step.pod.ordinal, "new")  # re-created on the update revision, Ready
        record = RollRecord(current_pod=new["currentPod"], step=str(new["step"]),  # type: ignore[arg-type]
                            waiting_for=new["waitingFor"], since=now,  # type: ignore[arg-type]
                            last_restart_at=now if step.kind is StepKind.RESTART else record.last_restart_at,
                            last_caught_up_at=now if step.kind is StepKind.CAUGHT_UP else record.last_caught_up_at)
        now += timedelta(seconds=5)
    restarts = [entry for entry in log if entry.startswith("restart:")]
    assert restarts == ["restart:goqueue-1", "restart:goqueue-0", "restart:goqueue-2"]
    assert log.index("TransferringLeadership:goqueue-2") < log.index("restart:goqueue-2")
    for name in ("goqueue-1", "goqueue-0"):
        assert log.index(f"CheckCaughtUp:{name}") > log.index(f"restart:{name}")
    assert all(p.revision == "new" for p in pods.values())
