"""Status computation (pure): phases, conditions, stable transition times, and every field in the CRD schema."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from crd_schema import JSON, load_crds, root_schema

from goqueue_operator.adoption import Adoption, AdoptionKind
from goqueue_operator.observed import ClusterObservation, PodFacts
from goqueue_operator.resize.plan import ResizeKind, ResizeStep
from goqueue_operator.roller.plan import RollStep, StepKind
from goqueue_operator.scaling.plan import ScaleKind, ScaleStep
from goqueue_operator.status.cluster import ClusterOutcome, cluster_status
from goqueue_operator.status.conditions import Condition, render_conditions, transitions
from goqueue_operator.status.remedies import Subject, is_failure, remedy, warning_message
from goqueue_operator.views import ClusterView

OPERATOR = Path(__file__).resolve().parents[3] / "operator" / "goqueue_operator"

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def cluster(replicas: int = 3, status: JSON | None = None, annotations: dict[str, str] | None = None) -> ClusterView:
    return ClusterView.from_body({
        "metadata": {"name": "goqueue", "namespace": "goqueue", "uid": "u", "generation": 2,
                     "annotations": annotations or {}},
        "spec": {"replicas": replicas}, "status": {"phase": "Running"} if status is None else status})


def observed(ready: int = 3, pods: int = 3) -> ClusterObservation:
    facts = tuple(PodFacts(name=f"goqueue-{i}", ordinal=i, uid=str(i), ip="127.0.0.1", ready=i < ready,
                           deleting=False, revision="r", version="0.1.0") for i in range(pods))
    return ClusterObservation(statefulset={"metadata": {"name": "goqueue"}}, pods=facts)


def conditions_of(status: JSON) -> dict[str, JSON]:
    return {c["type"]: c for c in status["conditions"]}


def schema_paths(schema: JSON, prefix: str = "") -> set[str]:
    paths = set()
    for name, prop in schema.get("properties", {}).items():
        paths.add(prefix + name)
        paths |= schema_paths(prop, f"{prefix}{name}.")
        if "properties" in prop.get("items", {}):
            paths |= schema_paths(prop["items"], f"{prefix}{name}[].")
    return paths


def value_paths(value: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            paths.add(prefix + key)
            paths |= value_paths(item, f"{prefix}{key}.")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for item in value:
            paths |= value_paths(item, prefix[:-1] + "[].")
    return paths


def full_outcome() -> ClusterOutcome:
    return ClusterOutcome(
        roll=RollStep(StepKind.BLOCKED, None, "PreRestartCheckUnavailable", "404", ("goqueue-2",)),
        roll_record={"step": "Blocked", "currentPod": None, "waitingFor": "x/", "blockedReason": "404",
                     "since": "2026-01-01T12:00:00Z", "lastRestartAt": None, "lastCaughtUpAt": None,
                     "pending": ["goqueue-2"]},
        resize=ResizeStep(ResizeKind.PATCH_CLAIMS, ("c",), "raising"),
        storage_record={"size": "1Gi", "targetSize": "2Gi", "phase": "PatchingClaims", "message": "raising"},
        scale=ScaleStep(ScaleKind.REFUSED, 3, (2,), "DepartingBrokersHoldReplicas", "refused", "Refused"),
        scaling_record={"phase": "Refused", "from": 3, "to": 2, "message": "refused"}, leader=1)


def test_every_status_field_is_in_the_crd_schema() -> None:
    """The API server prunes unknown status fields silently: what we compute must be in the schema."""
    status = cluster_status(cluster(), observed(), full_outcome(), now=NOW)
    schema = schema_paths(root_schema(load_crds()["GoQueueCluster"])["properties"]["status"])
    assert value_paths(status) - schema == set()


def test_running_cluster_is_ready() -> None:
    status = cluster_status(cluster(), observed(), ClusterOutcome(leader=0), now=NOW)
    assert status["phase"] == "Running"
    assert (status["readyReplicas"], status["replicas"], status["leader"]) == (3, 3, 0)
    ready = conditions_of(status)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "AllBrokersReady", "3/3 brokers ready")
    assert conditions_of(status)["Degraded"]["status"] == "False"
    assert status["observedGeneration"] == 2


def test_a_broker_down_is_degraded() -> None:
    status = cluster_status(cluster(), observed(ready=2), ClusterOutcome(), now=NOW)
    assert status["phase"] == "Degraded"
    degraded = conditions_of(status)["Degraded"]
    assert (degraded["status"], degraded["message"]) == ("True", "goqueue-2 not Ready")
    assert conditions_of(status)["Ready"]["message"] == "2/3 brokers ready"


def test_creating_is_not_degraded() -> None:
    status = cluster_status(cluster(status={}), observed(ready=0), ClusterOutcome(), now=NOW)
    assert status["phase"] == "Creating"
    assert conditions_of(status)["Degraded"]["status"] == "False"
    assert conditions_of(status)["Progressing"]["status"] == "True"


def test_blocked_roll_and_refused_scale_down_are_conditions() -> None:
    status = cluster_status(cluster(), observed(), full_outcome(), now=NOW)
    found = conditions_of(status)
    assert (found["RollBlocked"]["status"], found["RollBlocked"]["reason"]) == ("True", "PreRestartCheckUnavailable")
    assert found["ScaleDownBlocked"]["reason"] == "DepartingBrokersHoldReplicas"
    assert found["Resizing"]["status"] == "True"
    assert status["phase"] == "Resizing"
    assert status["rollout"]["blockedReason"] == "404"


def test_scaled_to_zero_is_stopped() -> None:
    status = cluster_status(cluster(replicas=0), observed(0, 0), ClusterOutcome(), now=NOW)
    assert status["phase"] == "Stopped"
    assert conditions_of(status)["Ready"]["reason"] == "Stopped"


def test_paused_cluster_says_so() -> None:
    status = cluster_status(cluster(annotations={"goqueue.io/paused": "true"}), observed(), ClusterOutcome(),
                            now=NOW)
    assert status["phase"] == "Paused"
    assert status["paused"] is True
    assert conditions_of(status)["Paused"]["status"] == "True"


def test_transition_time_moves_only_when_status_changes() -> None:
    earlier = NOW - timedelta(hours=1)
    first = render_conditions([Condition("Ready", True, "A")], [], generation=1, now=earlier)
    same = render_conditions([Condition("Ready", True, "B", "other")], first, generation=2, now=NOW)
    assert same[0]["lastTransitionTime"] == "2026-01-01T11:00:00Z"
    assert same[0]["observedGeneration"] == 2
    flipped = render_conditions([Condition("Ready", False, "B")], first, generation=2, now=NOW)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_transitions_name_changed_conditions_only() -> None:
    previous = render_conditions([Condition("Ready", True, "A"), Condition("Degraded", False, "OK")], [],
                                 generation=1, now=NOW)
    changed = transitions([Condition("Ready", True, "A"), Condition("Degraded", True, "Down"),
                           Condition("Paused", False, "NotPaused")], previous)
    assert [c.type for c in changed] == ["Degraded"]


def test_a_resource_failing_from_its_first_reconcile_is_a_transition() -> None:
    """A new Ready=False counts (else a topic refused at creation never shows in `kubectl get events`); other new
    False conditions do not."""
    changed = transitions([Condition("Ready", False, "ClusterNotFound"), Condition("Conflict", False, "NoConflict")],
                          [])
    assert [(c.type, c.reason) for c in changed] == [("Ready", "ClusterNotFound")]


READY_FALSE_REASONS = ("ClusterNotFound", "ClusterDeleting", "ClusterNotReady", "RejectedByBroker",
                       "BrokerApiMissing", "BrokerError", "Conflict", "CannotReconcile", "InvalidSpec",
                       "AdoptionRefused", "BrokersNotReady", "ClusterInvalid", "TlsAuthenticationUnavailable",
                       "SecretConflict", "SecretNotWritable")
# Ready=False reasons that are a state, not a failure: no Warning, no fix.
NOT_FAILURES = ("Stopped",)


@pytest.mark.parametrize("reason", READY_FALSE_REASONS)
def test_every_failure_reason_has_a_fix_naming_the_resource(reason: str) -> None:
    subject = Subject("GoQueueTopic", "apps", "orders", "main")
    bad = Condition("Ready", False, reason, "what the broker said")
    message = warning_message(subject, bad)
    assert message.startswith("GoQueueTopic apps/orders: what the broker said. Fix: "), message
    assert len(remedy(subject, bad)) > 20
    assert is_failure(bad)


def test_the_operator_sets_no_ready_false_reason_without_a_fix() -> None:
    """Every Ready=False reason written in the handlers is one the remedies know (a new reason needs its fix)."""
    source = "\n".join(p.read_text() for folder in ("handlers", "status") for p in (OPERATOR / folder).glob("*.py"))
    written = set(re.findall(r'Condition\("Ready", False, "(\w+)"', source))
    written |= set(re.findall(r'BrokerTarget\(None, "(\w+)"', source))
    assert {"ClusterNotFound", "AdoptionRefused", "Stopped"} <= written, "the scan missed reasons: the pattern is stale"
    assert written <= set(READY_FALSE_REASONS) | set(NOT_FAILURES), written - set(READY_FALSE_REASONS)


def test_only_failures_are_warnings() -> None:
    assert not is_failure(Condition("Ready", True, "Synced"))
    assert is_failure(Condition("Degraded", True, "BrokersNotReady", warning=True))
    assert not is_failure(Condition("Paused", True, "PausedByAnnotation"))
    assert remedy(Subject("GoQueueCluster", "ns", "c"), Condition("Paused", True, "PausedByAnnotation")) == ""


def test_a_refused_adoption_is_a_pending_cluster_not_ready_saying_why() -> None:
    refused = Adoption(AdoptionKind.REFUSED, "StatefulSet goqueue selects pods by app=goqueue")
    status = cluster_status(cluster(), observed(), ClusterOutcome(adoption=refused), now=NOW)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["status"], ready["reason"]) == ("Pending", "False", "AdoptionRefused")
    assert ready["message"] == refused.message
