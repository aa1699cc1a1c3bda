"""GoQueueCluster status from what was observed and what the procedures decided this reconcile. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from goqueue_operator.adoption import Adoption, AdoptionKind
from goqueue_operator.observed import ClusterObservation
from goqueue_operator.pki.outcome import TlsOutcome
from goqueue_operator.resize.plan import ResizeKind, ResizeStep
from goqueue_operator.resources import labels
from goqueue_operator.resources.configmap import config_hash
from goqueue_operator.roller.plan import RollStep, StepKind
from goqueue_operator.scaling.plan import ScaleKind, ScaleStep
from goqueue_operator.status.conditions import Condition, render_conditions
from goqueue_operator.views import ClusterView

JSON = dict[str, Any]
PROGRESSING_PHASES = frozenset({"Creating", "Upgrading", "Resizing", "Scaling"})


@dataclass(frozen=True)
class ClusterOutcome:
    """What this reconcile's procedures decided (None: not run, e.g. while paused)."""

    roll: RollStep | None = None
    roll_record: JSON | None = None
    resize: ResizeStep | None = None
    storage_record: JSON | None = None
    scale: ScaleStep | None = None
    scaling_record: JSON | None = None
    leader: int | None = None
    adoption: Adoption | None = None
    tls: TlsOutcome | None = None


def cluster_phase(cluster: ClusterView, observation: ClusterObservation, outcome: ClusterOutcome) -> str:
    desired, ready, pods = cluster.spec.replicas, len(observation.ready_pods), len(observation.pods)
    if cluster.paused:
        return "Paused"
    if outcome.adoption is not None and outcome.adoption.kind is AdoptionKind.REFUSED:
        return "Pending"
    if desired == 0:
        return "Stopped" if pods == 0 else "Scaling"
    if cluster.record.phase in (None, "Pending", "Creating") and ready < desired:
        return "Creating" if observation.statefulset is not None else "Pending"
    if outcome.resize is not None and outcome.resize.kind.resizing:
        return "Resizing"
    if outcome.roll is not None and (outcome.roll.pending or outcome.roll.kind is not StepKind.IDLE):
        return "Upgrading"
    if pods != desired or (outcome.scale is not None and outcome.scale.kind is not ScaleKind.APPLY):
        return "Scaling"
    if ready < desired:
        return "Degraded"
    return "Running"


def cluster_conditions(cluster: ClusterView, observation: ClusterObservation, outcome: ClusterOutcome,
                       phase: str) -> list[Condition]:
    desired, ready = cluster.spec.replicas, len(observation.ready_pods)
    ratio = f"{ready}/{desired} brokers ready"
    if desired == 0:
        ready_condition = Condition("Ready", False, "Stopped", "scaled to 0: every broker stopped, claims kept")
    elif ready == desired and len(observation.pods) == desired:
        ready_condition = Condition("Ready", True, "AllBrokersReady", ratio)
    else:
        ready_condition = Condition("Ready", False, "BrokersNotReady", ratio)
    if outcome.adoption is not None and outcome.adoption.kind is AdoptionKind.REFUSED:
        ready_condition = Condition("Ready", False, "AdoptionRefused", outcome.adoption.message)
    restarting = cluster.record.rollout.current_pod
    down = [p.name for p in observation.pods if not p.ready and p.name != restarting]
    degraded = bool(down) and phase not in ("Creating", "Pending", "Stopped", "Paused")
    roll = outcome.roll
    upgrading = roll is not None and (bool(roll.pending) or roll.kind not in (StepKind.IDLE, StepKind.PAUSED))
    resize = outcome.resize
    return [
        ready_condition,
        Condition("Progressing", phase in PROGRESSING_PHASES, phase, _progress_message(phase, outcome, ratio)),
        Condition("Degraded", degraded, "BrokersNotReady" if degraded else "AsExpected",
                  f"{', '.join(down)} not Ready" if degraded else "", warning=True),
        Condition("Upgrading", upgrading, roll.reason or roll.kind.value if roll and upgrading else "UpToDate",
                  roll.message if roll and upgrading else ""),
        Condition("Resizing", bool(resize and resize.kind.resizing),
                  resize.kind.value if resize and resize.kind is not ResizeKind.IDLE else "Idle",
                  resize.message if resize else ""),
        Condition("RollBlocked", bool(roll and roll.kind is StepKind.BLOCKED),
                  roll.reason if roll and roll.kind is StepKind.BLOCKED else "NotBlocked",
                  roll.message if roll and roll.kind is StepKind.BLOCKED else "", warning=True),
        Condition("ScaleDownBlocked", _scale_blocked(outcome.scale),
                  outcome.scale.code if outcome.scale and _scale_blocked(outcome.scale) else "NotBlocked",
                  outcome.scale.message if outcome.scale and _scale_blocked(outcome.scale) else "", warning=True),
        Condition("Paused", cluster.paused, "PausedByAnnotation" if cluster.paused else "NotPaused",
                  f"{labels.PAUSED_ANNOTATION} is set: the operator changes nothing" if cluster.paused else ""),
        *([outcome.tls.condition] if outcome.tls is not None else []),
    ]


def _scale_blocked(step: ScaleStep | None) -> bool:
    return step is not None and (step.kind is ScaleKind.REFUSED or step.stalled)


def _progress_message(phase: str, outcome: ClusterOutcome, ratio: str) -> str:
    if phase == "Upgrading" and outcome.roll is not None:
        return outcome.roll.message or ratio
    if phase == "Resizing" and outcome.resize is not None:
        return outcome.resize.message
    if phase == "Scaling" and outcome.scale is not None and outcome.scale.message:
        return outcome.scale.message
    return ratio


def running_version(cluster: ClusterView, observation: ClusterObservation) -> str:
    versions = sorted({p.version for p in observation.pods if p.version})
    return ", ".join(versions) if versions else cluster.spec.version


def cluster_status(cluster: ClusterView, observation: ClusterObservation, outcome: ClusterOutcome, *,
                   now: datetime) -> JSON:
    phase = cluster_phase(cluster, observation, outcome)
    conditions = cluster_conditions(cluster, observation, outcome, phase)
    status: JSON = {
        "phase": phase,
        "observedGeneration": cluster.meta.generation,
        "replicas": len(observation.pods),
        "readyReplicas": len(observation.ready_pods),
        "selector": labels.selector_string(cluster.name),
        "version": running_version(cluster, observation),
        "leader": outcome.leader,
        "paused": cluster.paused,
        "configHash": config_hash(cluster),
        "conditions": render_conditions(conditions, cluster.record.conditions, generation=cluster.meta.generation,
                                        now=now),
    }
    for key, record in (("rollout", outcome.roll_record), ("storage", outcome.storage_record),
                        ("scaling", outcome.scaling_record)):
        if record is not None:
            status[key] = record
    if outcome.tls is not None and outcome.tls.record:
        status["tls"] = outcome.tls.record
    return status
