"""The roller's planner: which broker to restart next, or what to wait for, or why the roll is blocked. Pure.

A broker needs a restart when its pod runs an older StatefulSet revision (a new version, image or settings:
the StatefulSet is `OnDelete`, so nothing else restarts it) or when its claim reports FileSystemResizePending.
The rules, after Strimzi's KafkaRoller and Redpanda's pre/post-restart probes:

1. One broker at a time. A restarted broker must be Ready *and* caught up (back in the metadata quorum, every
   replica back in its ISR: the broker's caught-up check) before the next restart.
2. Every broker must be Ready before the next restart, and at least spec.rollout.minDelaySeconds must have
   passed since the last one caught up.
3. Order: highest ordinal first, the metadata leader last; before restarting the leader, leadership is moved.
4. Before each restart the broker's pre-restart check must say it is safe (no partition below
   min.insync.replicas, the Raft quorum kept).
5. Never force. A check that cannot be made (endpoint missing: HTTP 404, broker unreachable) blocks at once
   (RollBlocked with the reason); a check that says "not yet" waits, and a wait longer than
   spec.rollout.stallTimeoutSeconds becomes RollBlocked too, still waiting.

The executor (roller/execute.py) asks the brokers for the facts the planner requests (NEED_LEADER,
CHECK_PRE_RESTART, CHECK_CAUGHT_UP, TRANSFER_LEADERSHIP), plans again with them, and performs the one step that
results. What must survive an operator restart (the pod being restarted, when it was) is in status.rollout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from goqueue_operator.brokers import CheckResult, CheckStatus
from goqueue_operator.observed import ClusterObservation, PodFacts
from goqueue_operator.status.conditions import timestamp
from goqueue_operator.views import ClusterView


class StepKind(StrEnum):
    IDLE = "Idle"                          # nothing to restart
    PAUSED = "Paused"                      # the goqueue.io/rollout-paused annotation
    WAIT = "Waiting"                       # a precondition does not hold yet
    BLOCKED = "Blocked"                    # cannot proceed without help (RollBlocked)
    NEED_LEADER = "NeedLeader"             # fact: who leads the metadata Raft group?
    CHECK_PRE_RESTART = "CheckPreRestart"  # fact: is restarting this broker safe?
    CHECK_CAUGHT_UP = "CheckCaughtUp"      # fact: has the restarted broker caught up?
    TRANSFER_LEADERSHIP = "TransferringLeadership"  # action: move leadership off the broker
    RESTART = "Restarting"                 # action: delete the pod (the StatefulSet re-creates it)
    CAUGHT_UP = "CaughtUp"                 # action: record that the restarted broker is back

    @property
    def needs_facts(self) -> bool:
        return self in {StepKind.NEED_LEADER, StepKind.CHECK_PRE_RESTART, StepKind.CHECK_CAUGHT_UP,
                        StepKind.TRANSFER_LEADERSHIP}


@dataclass(frozen=True)
class RollStep:
    kind: StepKind
    pod: PodFacts | None = None
    code: str = ""      # CamelCase reason (condition reason, Event reason)
    message: str = ""   # for people
    pending: tuple[str, ...] = ()  # pods still to restart, in order
    stalled: bool = False  # a wait that outlasted the stall timeout (still the same wait: same key)

    @property
    def reason(self) -> str:
        return f"Stalled{self.code}" if self.stalled else self.code

    @property
    def key(self) -> str:
        """Identity of a wait: the stall clock runs while the same key repeats."""
        return f"{self.code}/{self.pod.name if self.pod else ''}"


@dataclass(frozen=True)
class RollFacts:
    """Broker answers gathered during one reconcile."""

    leader_known: bool = False
    leader: int | None = None
    leader_error: str | None = None
    pre_restart: Mapping[str, CheckResult] = field(default_factory=dict)
    caught_up: Mapping[str, CheckResult] = field(default_factory=dict)
    transferred: Mapping[str, CheckResult] = field(default_factory=dict)

    def with_leader(self, leader: int | None, error: str | None = None) -> RollFacts:
        return replace(self, leader_known=True, leader=leader, leader_error=error)

    def with_check(self, kind: StepKind, pod: str, result: CheckResult) -> RollFacts:
        if kind is StepKind.CHECK_PRE_RESTART:
            return replace(self, pre_restart={**self.pre_restart, pod: result})
        if kind is StepKind.CHECK_CAUGHT_UP:
            return replace(self, caught_up={**self.caught_up, pod: result})
        assert kind is StepKind.TRANSFER_LEADERSHIP, kind
        return replace(self, transferred={**self.transferred, pod: result})


@dataclass(frozen=True)
class RollRecord:
    """What status.rollout persisted (the part of the roll that must survive an operator restart)."""

    current_pod: str | None = None
    step: str | None = None
    waiting_for: str | None = None
    since: datetime | None = None
    last_restart_at: datetime | None = None
    last_caught_up_at: datetime | None = None


@dataclass(frozen=True)
class RollView:
    pods: tuple[PodFacts, ...]
    replicas: int
    update_revision: str | None
    revision_current: bool  # the StatefulSet controller has seen the latest template (observedGeneration)
    resize_pending: frozenset[int]
    record: RollRecord
    now: datetime
    paused: bool = False
    min_delay_s: float = 10.0
    stall_timeout_s: float = 600.0
    facts: RollFacts = RollFacts()


def restart_reason(view: RollView, pod: PodFacts) -> str | None:
    if view.update_revision and pod.revision and pod.revision != view.update_revision:
        return "new revision"
    if pod.ordinal in view.resize_pending:
        return "filesystem resize"
    return None


def restart_order(view: RollView) -> list[PodFacts]:
    """Pods that need a restart: highest ordinal first, the metadata leader last."""
    due = [p for p in view.pods if restart_reason(view, p) is not None]
    return sorted(due, key=lambda p: (p.ordinal == view.facts.leader, -p.ordinal))


def _wait(view: RollView, code: str, message: str, pod: PodFacts | None, pending: tuple[str, ...]) -> RollStep:
    """A wait, or RollBlocked once the same wait has lasted longer than the stall timeout."""
    step = RollStep(StepKind.WAIT, pod, code, message, pending)
    record = view.record
    if record.waiting_for == step.key and record.since is not None:
        waited = (view.now - record.since).total_seconds()
        if waited > view.stall_timeout_s:
            return replace(step, kind=StepKind.BLOCKED, stalled=True,
                           message=f"{message} (waiting for {waited:.0f}s, over the {view.stall_timeout_s:.0f}s "
                                   f"stall timeout; still waiting, never forcing)")
    return step


def _check_outcome(view: RollView, result: CheckResult, pod: PodFacts, what: str, code: str,
                   pending: tuple[str, ...]) -> RollStep | None:
    """None when the check passed; else the wait (broker said no) or the block (no trustworthy answer)."""
    if result.status is CheckStatus.OK:
        return None
    if result.status is CheckStatus.UNAVAILABLE:
        return RollStep(StepKind.BLOCKED, pod, f"{code}Unavailable",
                        f"{what} of {pod.name} is unavailable: {result.summary}", pending)
    return _wait(view, f"{code}Failed", f"{what} of {pod.name} says not yet: {result.summary}", pod, pending)


def next_roll_step(view: RollView) -> RollStep:
    current = _restarted_pod_step(view)
    if current is not None:
        return current
    if not view.revision_current:
        return _wait(view, "StatefulSetUpdating", "the StatefulSet controller has not yet seen the new template",
                     None, ())
    order = restart_order(view)
    pending = tuple(p.name for p in order)
    if not order:
        return RollStep(StepKind.IDLE)
    if view.paused:
        return RollStep(StepKind.PAUSED, None, "RolloutPaused",
                        f"goqueue.io/rollout-paused is set; {len(order)} broker(s) wait for a restart", pending)
    if any(p.deleting for p in view.pods) or len(view.pods) < view.replicas:
        return _wait(view, "AwaitingPods", f"{view.replicas - len(view.pods)} broker pod(s) to be (re)created",
                     None, pending)
    not_ready = [p.name for p in view.pods if not p.ready]
    if not_ready:
        return _wait(view, "AwaitingReady", f"every broker Ready before the next restart ({', '.join(not_ready)} "
                     "is not)", None, pending)
    if view.record.last_caught_up_at is not None:
        elapsed = (view.now - view.record.last_caught_up_at).total_seconds()
        if elapsed < view.min_delay_s:
            return RollStep(StepKind.WAIT, None, "MinimumDelay",
                            f"{view.min_delay_s - elapsed:.0f}s of spec.rollout.minDelaySeconds left", pending)
    if len(view.pods) > 1 and not view.facts.leader_known:
        return RollStep(StepKind.NEED_LEADER, pending=pending)
    if view.facts.leader_error is not None:
        return RollStep(StepKind.BLOCKED, None, "LeaderUnknown",
                        f"the metadata leader is unknown: {view.facts.leader_error}", pending)
    if len(view.pods) > 1 and view.facts.leader is None:
        # The brokers answer but name no leader: an election is under way (often the last restart's). Restarting a
        # voter now could cost the quorum, and "leader last" cannot be honoured without knowing who leads.
        return _wait(view, "MetadataElection", "the metadata group has no leader yet (an election is under way)",
                     None, pending)
    order = restart_order(view)  # again, now that the leader is known: it goes last
    return _restart_step(view, order[0], tuple(p.name for p in order))


def _restart_step(view: RollView, candidate: PodFacts, pending: tuple[str, ...]) -> RollStep:
    checked = view.facts.pre_restart.get(candidate.name)
    if checked is None:
        return RollStep(StepKind.CHECK_PRE_RESTART, candidate, pending=pending)
    if (stop := _check_outcome(view, checked, candidate, "the pre-restart check", "PreRestartCheck", pending)):
        return stop
    if len(view.pods) > 1 and view.facts.leader == candidate.ordinal:
        moved = view.facts.transferred.get(candidate.name)
        if moved is None:
            return RollStep(StepKind.TRANSFER_LEADERSHIP, candidate, pending=pending)
        if (stop := _check_outcome(view, moved, candidate, "the leadership transfer", "LeadershipTransfer",
                                   pending)):
            return stop
    reason = restart_reason(view, candidate)
    leader = "" if len(view.pods) == 1 else f"; metadata leader: broker {view.facts.leader}"
    transferred = "; its leadership was moved first" if candidate.name in view.facts.transferred else ""
    return RollStep(StepKind.RESTART, candidate, "BrokerRestarting",
                    f"restarting {candidate.name} ({reason}{leader}{transferred}); {len(pending) - 1} more after it",
                    pending)


def _restarted_pod_step(view: RollView) -> RollStep | None:
    """While a restarted broker is not back (Ready and caught up), the roll waits for it."""
    name = view.record.current_pod
    if name is None:
        return None
    pod = next((p for p in view.pods if p.name == name), None)
    if pod is None or pod.deleting or not pod.ready:
        return _wait(view, "AwaitingRestartedBroker", f"{name} to be Ready after its restart", pod, ())
    checked = view.facts.caught_up.get(name)
    if checked is None:
        return RollStep(StepKind.CHECK_CAUGHT_UP, pod)
    if (stop := _check_outcome(view, checked, pod, "the caught-up check", "CaughtUpCheck", ())):
        return stop
    return RollStep(StepKind.CAUGHT_UP, pod, "BrokerCaughtUp", f"{name} is Ready and caught up")


def roll_view_for(cluster: ClusterView, observation: ClusterObservation, statefulset: dict[str, object] | None,
                  now: datetime) -> RollView:
    """The planner's input from a cluster, what was observed, and the StatefulSet as applied this reconcile."""
    status = statefulset.get("status", {}) if statefulset else {}
    meta = statefulset.get("metadata", {}) if statefulset else {}
    spec = statefulset.get("spec", {}) if statefulset else {}
    assert isinstance(status, dict)
    assert isinstance(meta, dict)
    assert isinstance(spec, dict)
    rollout = cluster.record.rollout
    return RollView(
        pods=observation.pods,
        replicas=int(spec.get("replicas", 0)),
        update_revision=status.get("updateRevision"),
        revision_current=statefulset is None or status.get("observedGeneration", 0) >= meta.get("generation", 0),
        resize_pending=frozenset(c.ordinal for c in observation.claims if c.resize_pending and c.ordinal is not None),
        record=RollRecord(current_pod=rollout.current_pod, step=rollout.step, waiting_for=rollout.waiting_for,
                          since=rollout.since, last_restart_at=rollout.last_restart_at,
                          last_caught_up_at=rollout.last_caught_up_at),
        now=now, paused=cluster.rollout_paused,
        min_delay_s=cluster.spec.rollout.min_delay_seconds,
        stall_timeout_s=cluster.spec.rollout.stall_timeout_seconds,
    )


def roll_record(view: RollView, step: RollStep) -> dict[str, object]:
    """status.rollout after `step` (a merge patch: None removes a field)."""
    record = view.record
    waiting = step.kind in (StepKind.WAIT, StepKind.BLOCKED)
    same_wait = waiting and record.waiting_for == step.key and record.since is not None
    since = record.since if same_wait else view.now
    current = record.current_pod
    last_restart, last_caught_up = record.last_restart_at, record.last_caught_up_at
    if step.kind is StepKind.RESTART and step.pod is not None:
        current, last_restart = step.pod.name, view.now
    elif step.kind is StepKind.CAUGHT_UP:
        current, last_caught_up = None, view.now
    return {
        "step": step.kind.value,
        "currentPod": current,
        "waitingFor": step.key if waiting else None,
        "blockedReason": step.message if step.kind is StepKind.BLOCKED else None,
        "since": timestamp(since) if since else None,
        "lastRestartAt": timestamp(last_restart) if last_restart else None,
        "lastCaughtUpAt": timestamp(last_caught_up) if last_caught_up else None,
        "pending": list(step.pending),
    }
