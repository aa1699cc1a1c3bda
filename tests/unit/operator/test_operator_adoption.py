"""What the operator takes over when a StatefulSet of its cluster's name exists, and what it refuses (adoption.py)."""

from __future__ import annotations

from typing import Any

import pytest

from goqueue_operator.adoption import AdoptionKind, plan_adoption
from goqueue_operator.resources import labels

pytestmark = pytest.mark.unit

UID = "cluster-uid"


def chart_statefulset(**changes: Any) -> dict[str, Any]:
    """What `helm install goqueue charts/goqueue` makes, as far as adoption looks."""
    body: dict[str, Any] = {
        "metadata": {"name": "goqueue", "uid": "sts-uid", "labels": {"app.kubernetes.io/managed-by": "Helm"}},
        "spec": {"selector": {"matchLabels": labels.selector_labels("goqueue")}, "serviceName": "goqueue-headless",
                 "volumeClaimTemplates": [{"metadata": {"name": "goqueue-data"}}]},
    }
    for key, value in changes.items():
        body["spec" if key != "ownerReferences" else "metadata"][key] = value
    return body


def test_no_statefulset_or_our_own_needs_nothing() -> None:
    assert plan_adoption("goqueue", UID, None).kind is AdoptionKind.NONE
    ours = chart_statefulset(ownerReferences=[{"kind": "GoQueueCluster", "uid": UID, "controller": True}])
    assert plan_adoption("goqueue", UID, ours).kind is AdoptionKind.NONE


def test_a_plain_chart_statefulset_is_adopted_and_says_by_whom() -> None:
    adoption = plan_adoption("goqueue", UID, chart_statefulset())
    assert adoption.kind is AdoptionKind.ADOPT
    assert "managed by Helm" in adoption.message


@pytest.mark.parametrize(("change", "why"), [
    ({"ownerReferences": [{"kind": "Deployment", "name": "x", "uid": "u", "controller": True}]}, "controlled by"),
    ({"selector": {"matchLabels": {"app": "goqueue"}}}, "selects pods by app=goqueue"),
    ({"volumeClaimTemplates": [{"metadata": {"name": "data"}}]}, "restarted brokers would start empty"),
    ({"serviceName": "brokers"}, "peers' addresses would change"),
])
def test_what_would_break_running_brokers_is_refused_with_the_reason(change: dict[str, Any], why: str) -> None:
    adoption = plan_adoption("goqueue", UID, chart_statefulset(**change))
    assert adoption.kind is AdoptionKind.REFUSED
    assert why in adoption.message, adoption.message
