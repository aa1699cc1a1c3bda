"""What a GoQueueRebalance does next, and the status that says so. Pure: no client, no clock of its own.

The life of a rebalance (Strimzi's KafkaRebalance states):

  ProposalPending ─propose─▶ ProposalReady ─approve─▶ Rebalancing ─moves done─▶ Ready
        ▲                      │  (no moves: Ready)        │ stop
        └──── refresh, goals changed, a stale proposal ◀───┘──────▶ Stopped

* A proposal is the brokers' answer to the goals (`POST …/reassignments/plan`): each move names the replicas it
  starts from and the partition version it saw. It is kept in status, and approving executes exactly it.
* Approval: `spec.approved: true` (every proposal, as soon as it is ready) or the annotation
  `goqueue.io/rebalance=approve` (this proposal, once). `stop` sends the partitions still moving back; `refresh`
  makes a new proposal. An annotation is removed once acted on; an `approve` is removed before the phase
  Rebalancing is recorded (a crash in between loses the approval, never grants one to a later proposal). While
  Rebalancing an `approve` or `refresh` is moot and removed; a `stop` on a proposal not yet approved drops it.
* The moves are the brokers' replicated metadata, driven to completion by their controller; the operator only
  reads where each partition is. So progress is computed from the brokers on every reconcile, never accumulated,
  and a restarted operator resumes from what the brokers say. The one thing it records before acting is the
  phase Rebalancing (then `executed` once the brokers answered): found without `executed`, the execute call is
  made again, which cannot apply a move twice — each is compare-and-set on its partition version, which the
  first execute changed.
* A move the brokers refused (its partition changed since the proposal) or that someone sent back is `lost`; once
  nothing of the proposal moves any more, a lost move makes a new proposal (reason StaleProposal), which needs
  approval again unless spec.approved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from goqueue_operator.rebalance.view import ProposalRecord, ProposedMove, RebalanceView
from goqueue_operator.status.conditions import Condition

PartitionKey = tuple[str, int]


class Phase(StrEnum):
    PROPOSAL_PENDING = "ProposalPending"
    PROPOSAL_READY = "ProposalReady"
    REBALANCING = "Rebalancing"
    READY = "Ready"
    STOPPED = "Stopped"
    NOT_READY = "NotReady"


class StepKind(StrEnum):
    PROPOSE = "Propose"      # ask the brokers for a proposal
    AWAIT = "Await"          # a proposal waits for approval: nothing to do
    EXECUTE = "Execute"      # record Rebalancing, then execute the proposal's moves
    TRACK = "Track"          # moves run: report progress
    COMPLETE = "Complete"    # every move done: Ready
    STOP = "Stop"            # cancel the proposal's partitions still moving: Stopped
    IDLE = "Idle"            # Ready or Stopped: nothing until refresh or new goals


@dataclass(frozen=True)
class Observed:
    """Where the brokers have the proposal's partitions (read on every reconcile while Rebalancing)."""

    moving: Mapping[PartitionKey, tuple[int, ...]] = field(default_factory=dict)  # partition moving now → its target
    replicas: Mapping[PartitionKey, tuple[int, ...]] = field(default_factory=dict)  # live replicas; absent: gone
    bytes_copied: Mapping[PartitionKey, int] = field(default_factory=dict)  # what a moving one's new replicas hold


@dataclass(frozen=True)
class Tracked:
    """The approved proposal's moves, classified from what the brokers say."""

    total: int
    done: tuple[PartitionKey, ...] = ()
    moving: tuple[PartitionKey, ...] = ()
    lost: tuple[PartitionKey, ...] = ()  # refused, sent back, moved elsewhere, or its topic deleted
    bytes_to_copy: int = 0
    bytes_copied: int | None = None  # None: a moving partition's copy is not reported (an older broker)

    @property
    def summary(self) -> str:
        return f"{len(self.done)}/{self.total}"


@dataclass(frozen=True)
class RebalanceStep:
    kind: StepKind
    reason: str = ""
    message: str = ""
    tracked: Tracked | None = None
    consume_annotation: bool = False  # the goqueue.io/rebalance annotation was acted on (or is moot): remove it


def key_of(move: ProposedMove) -> PartitionKey:
    return (move.topic, move.partition)


def track(moves: Sequence[ProposedMove], observed: Observed) -> Tracked:
    """Done: not moving and at its target. Moving: the brokers move it to *this* target. Anything else is lost."""
    done: list[PartitionKey] = []
    moving: list[PartitionKey] = []
    lost: list[PartitionKey] = []
    copied: int | None = 0
    for move in moves:
        key, target = key_of(move), tuple(move.target)
        if key in observed.moving:
            if observed.moving[key] == target:
                moving.append(key)
                reported = observed.bytes_copied.get(key)
                copied = None if copied is None or reported is None else copied + min(reported, move.bytes_to_copy)
            else:
                lost.append(key)
        elif observed.replicas.get(key) == target:
            done.append(key)
            copied = None if copied is None else copied + move.bytes_to_copy
        else:
            lost.append(key)
    return Tracked(total=len(moves), done=tuple(done), moving=tuple(moving), lost=tuple(lost),
                   bytes_to_copy=sum(m.bytes_to_copy for m in moves), bytes_copied=copied)


def next_rebalance_step(view: RebalanceView, observed: Observed | None) -> RebalanceStep:
    """`observed` is read only while Rebalancing (None otherwise)."""
    record, action = view.record, view.action
    proposal = record.proposal
    fresh = proposal is not None and proposal.goals == view.goals_key
    if record.phase == Phase.REBALANCING and proposal is not None:
        if action == "stop":
            return RebalanceStep(StepKind.STOP, "Stopped", "stopped by the goqueue.io/rebalance=stop annotation",
                                 consume_annotation=True)
        # An approve or refresh is moot while the moves run: consumed, so a left-over approve can never approve the
        # re-proposal (StaleProposal, GoalsChanged) that nobody has reviewed yet.
        moot = action in ("approve", "refresh")
        if record.progress is None or not record.progress.executed:
            # Recorded Rebalancing, then the operator stopped before the brokers answered: execute again
            # (compare-and-set on each partition version: a move already begun is refused, never applied twice).
            return RebalanceStep(StepKind.EXECUTE, "Rebalancing", "resuming: executing the approved proposal",
                                 consume_annotation=moot)
        tracked = track(proposal.partitions, observed or Observed())
        if tracked.moving:
            return RebalanceStep(StepKind.TRACK, "Rebalancing", progress_message(tracked), tracked,
                                 consume_annotation=moot)
        if tracked.lost:
            return RebalanceStep(StepKind.PROPOSE, "StaleProposal", (
                f"{len(tracked.lost)} of {tracked.total} moves were refused or sent back (their partitions changed "
                f"since the proposal: {_names(tracked.lost)}); {len(tracked.done)} completed; proposing again"),
                tracked, consume_annotation=moot)
        if not fresh:
            return RebalanceStep(StepKind.PROPOSE, "GoalsChanged", "the proposal completed; the goals changed "
                                 "meanwhile: proposing again", tracked, consume_annotation=moot)
        return RebalanceStep(StepKind.COMPLETE, "RebalanceComplete",
                             f"{tracked.total} moves completed ({_bytes(tracked.bytes_to_copy)} copied)", tracked,
                             consume_annotation=moot)
    if action == "refresh":
        return RebalanceStep(StepKind.PROPOSE, "ProposalPending", "refresh requested", consume_annotation=True)
    if proposal is None or record.phase in (None, Phase.PROPOSAL_PENDING, Phase.NOT_READY):
        return RebalanceStep(StepKind.PROPOSE, "ProposalPending", "asking the brokers for a proposal")
    if not fresh:
        return RebalanceStep(StepKind.PROPOSE, "GoalsChanged", "the goals or the throttle changed: proposing again")
    if record.phase == Phase.PROPOSAL_READY:
        if action == "stop":  # the proposal is dropped before it runs (kept, it would cancel a later approved run)
            return RebalanceStep(StepKind.STOP, "Stopped", "stopped by the goqueue.io/rebalance=stop annotation "
                                 "before the proposal was approved: nothing moved", consume_annotation=True)
        if view.spec.approved or action == "approve":
            how = "spec.approved" if view.spec.approved else "the goqueue.io/rebalance=approve annotation"
            return RebalanceStep(StepKind.EXECUTE, "Rebalancing", f"approved by {how}",
                                 consume_annotation=action == "approve")
        return RebalanceStep(StepKind.AWAIT, "AwaitingApproval", awaiting_message(view.meta.name, proposal))
    # Ready or Stopped: final until refreshed or the goals change; an approve or stop now has nothing to act on.
    return RebalanceStep(StepKind.IDLE, consume_annotation=action in ("approve", "stop"))


def proposal_phase(proposal: ProposalRecord) -> Phase:
    """An empty proposal means the goals are met already."""
    return Phase.PROPOSAL_READY if proposal.moves else Phase.READY


def awaiting_message(name: str, proposal: ProposalRecord) -> str:
    return (f"{proposal_summary(proposal)}; approve: kubectl annotate goqueuerebalance {name} "
            "goqueue.io/rebalance=approve (or set spec.approved: true)")


def proposal_summary(proposal: ProposalRecord) -> str:
    estimate = (f", about {proposal.estimated_seconds:.0f}s at {_bytes(proposal.throttle_bytes_per_second)}/s"
                if proposal.estimated_seconds is not None and proposal.throttle_bytes_per_second else
                ", unthrottled")
    return f"{proposal.moves} moves, {_bytes(proposal.bytes_to_copy)} to copy{estimate}"


def progress_message(tracked: Tracked) -> str:
    copied = "" if tracked.bytes_copied is None else (
        f", {_bytes(tracked.bytes_copied)} of {_bytes(tracked.bytes_to_copy)} copied")
    return f"{tracked.summary} partitions moved, {len(tracked.moving)} moving{copied}"


def progress_fields(tracked: Tracked) -> dict[str, object]:
    """status.progress's computed part (the recorded part, executed/startedAt/refused, is kept by the executor)."""
    fields: dict[str, object] = {"summary": tracked.summary, "partitionsTotal": tracked.total,
                                 "partitionsDone": len(tracked.done), "partitionsMoving": len(tracked.moving),
                                 "bytesToCopy": tracked.bytes_to_copy}
    if tracked.bytes_copied is not None:
        fields["bytesCopied"] = tracked.bytes_copied
    return fields


def ready_condition(phase: Phase, reason: str, message: str) -> Condition:
    """Ready is True only once the goals are met; a False one is a failure (a Warning Event) unless its reason is
    a step of the procedure (status/remedies.py: IN_PROGRESS)."""
    return Condition("Ready", phase == Phase.READY, reason, message)


def _names(keys: Sequence[PartitionKey], limit: int = 5) -> str:
    names = [f"{topic}/{index}" for topic, index in keys[:limit]]
    return ", ".join(names) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _bytes(value: int | None) -> str:
    size = float(value or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
