"""GoQueueRebalance's planner (rebalance/plan.py) and the topic's replication-factor change (topic_factor.py),
without Kubernetes or brokers: what happens next for each phase, annotation and observation of the brokers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from goqueue.errors import TopicNotFound
from goqueue.models import (
    PartitionReassignment,
    ReassignmentPlan,
    ReassignmentProgress,
    ReassignmentStarted,
    TopicInfo,
)
from goqueue_operator.handlers.topic import _change_factor
from goqueue_operator.rebalance.execute import consumed_first, perform
from goqueue_operator.rebalance.plan import (
    Observed,
    Phase,
    StepKind,
    next_rebalance_step,
    progress_fields,
    ready_condition,
    track,
)
from goqueue_operator.rebalance.topic_factor import factor_change
from goqueue_operator.rebalance.view import ProposedMove, RebalanceView
from goqueue_operator.status.patch import merge_patch
from goqueue_operator.status.remedies import Subject, is_failure, warning_message
from goqueue_operator.views import SpecError, TopicView

pytestmark = pytest.mark.unit

MOVES = [{"topic": "orders", "partition": 0, "replicas": [0, 1], "target": [1, 2], "version": 7, "bytesToCopy": 100},
         {"topic": "orders", "partition": 1, "replicas": [1, 2], "target": [2, 0], "version": 4, "bytesToCopy": 50}]


def body(phase: str | None = None, *, approved: bool = False, annotation: str | None = None,
         executed: bool | None = None, goals: dict[str, Any] | None = None, proposed_for: dict[str, Any] | None = None,
         moves: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec = {"clusterRef": {"name": "goqueue"}, "goals": goals or {"balance": True}, "approved": approved}
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
        own = RebalanceView.from_body({"metadata": {"name": "x"}, "spec": {**spec, **(proposed_for or {})}})
        partitions = MOVES if moves is None else moves
        status["proposal"] = {"goals": own.goals_key, "moves": len(partitions), "bytesToCopy": 150,
                              "partitions": partitions}
    if executed is not None:
        status["progress"] = {"executed": executed, "startedAt": "2026-12-06T15:00:00Z"}
    annotations = {"goqueue.io/rebalance": annotation} if annotation else {}
    return {"metadata": {"name": "spread", "namespace": "apps", "generation": 2, "annotations": annotations},
            "spec": spec, "status": status}


def step(phase: str | None = None, observed: Observed | None = None, **kwargs: Any) -> Any:
    return next_rebalance_step(RebalanceView.from_body(body(phase, **kwargs)), observed)


def view_of(phase: str | None = None, **kwargs: Any) -> RebalanceView:
    return RebalanceView.from_body(body(phase, **kwargs))


async def refuse_persist(_: dict[str, Any]) -> None:
    raise AssertionError("nothing to persist")


async def no_consume() -> None:
    return None


NOW = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)


AT_TARGET = {("orders", 0): (1, 2), ("orders", 1): (2, 0)}


# -- proposal and approval -------------------------------------------------------------------------------------------

def test_a_new_rebalance_asks_for_a_proposal() -> None:
    new = step()
    assert (new.kind, new.reason) == (StepKind.PROPOSE, "ProposalPending")


def test_nothing_moves_until_approved() -> None:
    waiting = step("ProposalReady")
    assert waiting.kind is StepKind.AWAIT
    assert "goqueue.io/rebalance=approve" in waiting.message
    assert "2 moves" in waiting.message


@pytest.mark.parametrize(("approved", "annotation", "consumed"), [(True, None, False), (False, "approve", True),
                                                                  (True, "approve", True)])
def test_spec_approved_or_the_annotation_executes_the_proposal(approved: bool, annotation: str | None,
                                                               consumed: bool) -> None:
    executing = step("ProposalReady", approved=approved, annotation=annotation)
    assert executing.kind is StepKind.EXECUTE
    assert executing.consume_annotation is consumed


def test_approving_is_not_a_new_goal_but_changing_the_goals_or_throttle_is() -> None:
    assert step("ProposalReady", approved=True, proposed_for={"approved": False}).kind is StepKind.EXECUTE
    changed = step("ProposalReady", approved=True, proposed_for={"goals": {"drainBrokers": [2]}})
    assert (changed.kind, changed.reason) == (StepKind.PROPOSE, "GoalsChanged")
    throttled = step("ProposalReady", proposed_for={"throttleBytesPerSecond": 4096})
    assert throttled.kind is StepKind.PROPOSE


def test_refresh_proposes_again_and_is_consumed() -> None:
    for phase in ("ProposalReady", "Ready", "Stopped"):
        refreshed = step(phase, annotation="refresh")
        assert (refreshed.kind, refreshed.consume_annotation) == (StepKind.PROPOSE, True)


def test_ready_and_stopped_are_final_and_a_late_approve_or_stop_is_dropped() -> None:
    assert step("Ready").kind is StepKind.IDLE
    late = step("Stopped", annotation="approve")
    assert (late.kind, late.consume_annotation) == (StepKind.IDLE, True)


def test_an_unknown_annotation_value_names_the_choices() -> None:
    with pytest.raises(SpecError, match="approve, stop, refresh"):
        RebalanceView.from_body(body("ProposalReady", annotation="go"))


# -- execution, resumed from the brokers' word ----------------------------------------------------------------------

def test_rebalancing_without_the_brokers_answer_executes_again_never_replans() -> None:
    """The operator recorded Rebalancing, then died before the execute call returned: it executes the same
    proposal (compare-and-set on each version refuses what had begun) rather than proposing anew."""
    resumed = step("Rebalancing", executed=False)
    assert resumed.kind is StepKind.EXECUTE
    assert step("Rebalancing").kind is StepKind.EXECUTE  # no progress recorded at all: the same


def test_moving_partitions_are_tracked_from_the_brokers() -> None:
    observed = Observed(moving={("orders", 1): (2, 0)}, replicas={("orders", 0): (1, 2), ("orders", 1): (1, 2, 0)},
                        bytes_copied={("orders", 1): 20})
    tracking = step("Rebalancing", observed, executed=True)
    assert tracking.kind is StepKind.TRACK
    assert tracking.tracked is not None
    assert progress_fields(tracking.tracked) == {"summary": "1/2", "partitionsTotal": 2, "partitionsDone": 1,
                                                 "partitionsMoving": 1, "bytesToCopy": 150, "bytesCopied": 120}
    assert "1/2 partitions moved, 1 moving" in tracking.message


def test_every_move_at_its_target_completes() -> None:
    done = step("Rebalancing", Observed(replicas=AT_TARGET), executed=True)
    assert (done.kind, done.reason) == (StepKind.COMPLETE, "RebalanceComplete")


def test_a_refused_or_sent_back_move_makes_a_new_proposal_once_nothing_moves() -> None:
    sent_back = Observed(replicas={("orders", 0): (1, 2), ("orders", 1): (1, 2)})
    stale = step("Rebalancing", sent_back, executed=True)
    assert (stale.kind, stale.reason) == (StepKind.PROPOSE, "StaleProposal")
    assert "orders/1" in stale.message
    still_moving = Observed(moving={("orders", 0): (1, 2)}, replicas={("orders", 1): (1, 2)})
    assert step("Rebalancing", still_moving, executed=True).kind is StepKind.TRACK  # waits for the rest first


def test_goals_changed_mid_rebalance_wait_for_the_moves_then_propose() -> None:
    changed = {"goals": {"drainBrokers": [1]}}
    moving = Observed(moving={("orders", 0): (1, 2), ("orders", 1): (2, 0)})
    assert step("Rebalancing", moving, executed=True, proposed_for=changed).kind is StepKind.TRACK
    after = step("Rebalancing", Observed(replicas=AT_TARGET), executed=True, proposed_for=changed)
    assert (after.kind, after.reason) == (StepKind.PROPOSE, "GoalsChanged")


def test_stop_cancels_while_rebalancing() -> None:
    stopping = step("Rebalancing", Observed(moving={("orders", 0): (1, 2)}), executed=True, annotation="stop")
    assert (stopping.kind, stopping.consume_annotation) == (StepKind.STOP, True)


@pytest.mark.parametrize("approved", [False, True])
def test_stop_on_a_proposal_not_yet_running_drops_it_and_is_consumed(approved: bool) -> None:
    """Kept, a stop set while the proposal awaits approval would cancel the run a later spec.approved starts."""
    stopping = step("ProposalReady", annotation="stop", approved=approved)
    assert (stopping.kind, stopping.consume_annotation) == (StepKind.STOP, True)
    outcome = asyncio.run(perform(stopping, view_of("ProposalReady", annotation="stop"), None, None, NOW,
                                  refuse_persist, no_consume))  # no brokers asked: nothing runs
    assert (outcome.phase, outcome.ready.reason, outcome.ready.status) == (Phase.STOPPED, "Stopped", False)
    assert [reason for reason, _, _ in outcome.events] == ["RebalanceStopped"]
    assert outcome.status == {}  # no progress of a run that never was


@pytest.mark.parametrize("annotation", ["approve", "refresh"])
@pytest.mark.parametrize(("observed", "executed", "kind"), [
    (None, False, StepKind.EXECUTE),
    (Observed(moving={("orders", 0): (1, 2)}, replicas={("orders", 1): (2, 0)}), True, StepKind.TRACK),
    (Observed(replicas={("orders", 0): (1, 2), ("orders", 1): (1, 2)}), True, StepKind.PROPOSE),  # StaleProposal
    (Observed(replicas=AT_TARGET), True, StepKind.COMPLETE),
])
def test_an_approve_or_refresh_while_rebalancing_is_moot_and_consumed(
        annotation: str, observed: Observed | None, executed: bool, kind: StepKind) -> None:
    """Left in place, an approve sent while the moves run would approve the re-proposal nobody has reviewed."""
    running = step("Rebalancing", observed, executed=executed, annotation=annotation)
    assert (running.kind, running.consume_annotation) == (kind, True)
    changed = step("Rebalancing", Observed(replicas=AT_TARGET), executed=True, annotation=annotation,
                   proposed_for={"goals": {"drainBrokers": [1]}})
    assert (changed.reason, changed.consume_annotation) == ("GoalsChanged", True)


class Recorder:
    """A client double for perform(): every call in order, the annotation's removal and the status writes too."""

    def __init__(self, crash_on_persist: bool = False) -> None:
        self.calls: list[str] = []
        self.crash_on_persist = crash_on_persist

    async def consume(self) -> None:
        self.calls.append("remove annotation")

    async def persist(self, fragment: dict[str, Any]) -> None:
        self.calls.append(f"persist {fragment.get('phase')}")
        if self.crash_on_persist:
            raise RuntimeError("the operator died here")

    def plan_reassignment(self, goals: Any) -> ReassignmentPlan:
        self.calls.append("plan")
        return ReassignmentPlan.model_validate({"moves": MOVES, "bytesToCopy": 150})

    def execute_reassignment(self, moves: Any, throttle: int | None = None) -> ReassignmentStarted:
        self.calls.append("execute")
        return ReassignmentStarted(started=len(moves))

    def reassignment_progress(self) -> ReassignmentProgress:
        return ReassignmentProgress(done=True, partitions=[])

    def describe_topic(self, name: str) -> TopicInfo:
        raise TopicNotFound(f"{name} is not here")


def test_an_approval_is_removed_before_rebalancing_is_recorded() -> None:
    """A crash between recording Rebalancing and removing the annotation must lose the approval (approve again),
    never leave it to approve a later proposal."""
    client = Recorder()
    executing = step("ProposalReady", annotation="approve")
    asyncio.run(perform(executing, view_of("ProposalReady", annotation="approve"), client, None, NOW,  # type: ignore[arg-type]
                        client.persist, client.consume))
    assert client.calls == ["remove annotation", "persist Rebalancing", "execute"]
    crashing = Recorder(crash_on_persist=True)
    with pytest.raises(RuntimeError):
        asyncio.run(perform(executing, view_of("ProposalReady", annotation="approve"), crashing, None,  # type: ignore[arg-type]
                            NOW, crashing.persist, crashing.consume))
    assert crashing.calls == ["remove annotation", "persist Rebalancing"]
    approved = Recorder()  # spec.approved: there is no annotation to remove
    asyncio.run(perform(step("ProposalReady", approved=True), view_of("ProposalReady", approved=True),
                        approved, None, NOW, approved.persist, approved.consume))  # type: ignore[arg-type]
    assert approved.calls == ["persist Rebalancing", "execute"]


def test_a_moot_approve_is_removed_before_the_re_proposal_is_made() -> None:
    client = Recorder()
    stale = Observed(replicas={("orders", 0): (1, 2), ("orders", 1): (1, 2)})
    proposing = step("Rebalancing", stale, executed=True, annotation="approve")
    view = view_of("Rebalancing", executed=True, annotation="approve")
    outcome = asyncio.run(perform(proposing, view, client, stale, NOW, client.persist,  # type: ignore[arg-type]
                                  client.consume))
    assert client.calls == ["remove annotation", "plan"]
    assert (outcome.phase, outcome.ready.reason) == (Phase.PROPOSAL_READY, "StaleProposal")


def test_a_stop_is_removed_only_once_acted_on() -> None:
    stopping = step("Rebalancing", Observed(moving={("orders", 0): (1, 2)}), executed=True, annotation="stop")
    assert not consumed_first(stopping, view_of("Rebalancing", executed=True, annotation="stop"))


def test_track_classifies_each_move() -> None:
    moves = [ProposedMove.model_validate(m) for m in MOVES]
    elsewhere = track(moves, Observed(moving={("orders", 0): (0, 2)}, replicas={("orders", 1): (2, 0)}))
    assert (elsewhere.done, elsewhere.moving, elsewhere.lost) == ((("orders", 1),), (), (("orders", 0),))
    unknown = track(moves, Observed(moving={("orders", 0): (1, 2)}))  # an older broker: no bytes copied
    assert unknown.bytes_copied is None
    assert "bytesCopied" not in progress_fields(unknown)
    gone = track(moves, Observed())  # the topic was deleted
    assert gone.lost == (("orders", 0), ("orders", 1))


def test_failures_warn_with_the_fix_and_steps_do_not() -> None:
    stale = ready_condition(Phase.PROPOSAL_READY, "StaleProposal", "1 of 2 moves were refused")
    assert is_failure(stale)
    text = warning_message(Subject("GoQueueRebalance", "apps", "spread", "goqueue"), stale)
    assert "goqueue.io/rebalance=approve" in text
    assert not is_failure(ready_condition(Phase.PROPOSAL_READY, "AwaitingApproval", ""))
    assert not is_failure(ready_condition(Phase.REBALANCING, "Rebalancing", ""))
    assert ready_condition(Phase.READY, "RebalanceComplete", "").status is True


# -- a GoQueueTopic's replication factor ----------------------------------------------------------------------------

def moving(topic: str, partition: int, **extra: Any) -> PartitionReassignment:
    return PartitionReassignment(topic=topic, partition=partition, replicas=[0, 1, 2], target=[0, 1, 2],
                                 adding=[1, 2], removing=[], isr=[0], leader=0, copying=[1, 2], **extra)


def test_a_factor_change_starts_when_no_partition_of_the_cluster_moves() -> None:
    change = factor_change("orders", 1, 3, 4, [])
    assert change.action == "start"
    assert change.ready.reason == "ReplicationFactorChanging"
    assert not is_failure(change.ready)  # Ready=False while it runs, but a Normal Event, not a Warning


class TopicBrokers:
    """A client double for the GoQueueTopic factor change: what moves on the cluster, what the planner answers."""

    def __init__(self, moving: list[PartitionReassignment], planned: list[dict[str, Any]]) -> None:
        self.moving, self.planned = moving, planned
        self.calls: list[str] = []

    def reassignment_progress(self) -> ReassignmentProgress:
        return ReassignmentProgress(done=not self.moving, partitions=self.moving)

    def plan_reassignment(self, goals: Any) -> ReassignmentPlan:
        self.calls.append("plan")
        return ReassignmentPlan.model_validate({"moves": self.planned, "bytesToCopy": 0})

    def execute_reassignment(self, moves: Any, throttle: int | None = None) -> ReassignmentStarted:
        self.calls.append(f"execute {len(moves)} throttle {throttle}")
        return ReassignmentStarted(started=len(moves))


def change_factor(brokers: TopicBrokers, live_replicas: list[list[int]]) -> tuple[Any, dict[str, Any], list[Any]]:
    view = TopicView.from_body({"metadata": {"name": "orders", "namespace": "n", "uid": "u"},
                                "spec": {"clusterRef": {"name": "goqueue"}, "replicationFactor": 3}})
    details = [{"partition": i, "startOffset": 0, "endOffset": 0, "highWatermark": 0, "sizeBytes": 0, "segments": 1,
                "replicas": r} for i, r in enumerate(live_replicas)]
    live = TopicInfo.model_validate({"name": "orders", "partitions": len(live_replicas), "replicationFactor": 1,
                                     "config": {}, "partitionDetails": details})
    actions: list[Any] = []
    ready, status = asyncio.run(_change_factor(view, brokers, live, 3, actions))  # type: ignore[arg-type]
    return ready, status, actions


def test_a_factor_change_waits_while_another_reassignment_runs_on_the_cluster() -> None:
    """Starting would set the brokers' one replication throttle to the topic's (none here): a throttled
    GoQueueRebalance's moves would run unthrottled. The change waits, as a step, not a failure."""
    brokers = TopicBrokers([moving("payments", 0), moving("payments", 1)], [])
    ready, status, actions = change_factor(brokers, [[0], [1]])
    assert brokers.calls == []  # neither planned nor executed
    assert (ready.status, ready.reason) == (False, "WaitingForReassignment")
    assert "2 partitions of payments moving" in ready.message
    assert not is_failure(ready)  # a Normal Event (ReadyFalse) once, not a Warning
    assert (status["partitionsMoving"], actions) == (0, [])


def test_a_factor_change_the_brokers_plan_no_move_for_warns_and_executes_nothing() -> None:
    """An empty execute would leave the topic "0 partitions moving" for ever, with a Normal Event per reconcile."""
    brokers = TopicBrokers([], [])
    ready, status, actions = change_factor(brokers, [[0, 1, 2], [1, 2, 0]])
    assert brokers.calls == ["plan"]
    assert (ready.status, ready.reason, actions) == (False, "ReplicationFactorNotPlanned", [])
    assert "every partition already has 3 replicas but the brokers still report the topic's factor as 1" in (
        ready.message)
    assert is_failure(ready)  # a Warning Event with the fix
    assert warning_message(Subject("GoQueueTopic", "n", "orders", "goqueue"), ready).endswith(
        "until they agree (retried on every drift check)")
    assert status["message"] == ready.message
    _, _, started = change_factor(TopicBrokers([], [{"topic": "orders", "partition": 0, "replicas": [0],
                                                     "target": [0, 1, 2], "version": 3}]), [[0]])
    assert [reason for reason, _, _ in started] == ["ReplicationFactorChanging"]  # moves planned: they start


def test_a_factor_change_waits_for_its_moving_partitions_and_reports_bytes() -> None:
    change = factor_change("orders", 1, 3, 4, [moving("orders", 0, bytesToCopy=200, bytesCopied=50),
                                               moving("orders", 1, bytesToCopy=100, bytesCopied=100)])
    assert change.action == "wait"
    assert change.status == {"fromReplicationFactor": 1, "toReplicationFactor": 3, "partitionsMoving": 2,
                             "partitionsTotal": 4, "bytesToCopy": 300, "bytesCopied": 150,
                             "message": change.ready.message}
    assert "2 of 4 partitions moving" in change.ready.message


def test_the_handler_follows_its_status_patches_as_the_api_server_merges_them() -> None:
    """A step's status is a merge patch: the handler's copy of the status must merge it the same way (a shallow
    merge once dropped progress.executed, and the next step executed the proposal again)."""
    status = {"phase": "Rebalancing", "progress": {"executed": True, "startedAt": "t0", "summary": "0/2"}}
    merged = merge_patch(status, {"progress": {"summary": "1/2", "bytesCopied": None}, "proposal": None})
    assert merged == {"phase": "Rebalancing", "progress": {"executed": True, "startedAt": "t0", "summary": "1/2"}}
