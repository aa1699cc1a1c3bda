"""The operator's own CRDs (bundled_crds.py): what it bundles, and when it applies them — never over a newer
operator's. Applying them on a real API server: tests/integration/operator/test_operator_crd_upgrade.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goqueue_operator import __version__
from goqueue_operator.bundled_crds import VERSION_ANNOTATION, bundled_names, decide, load_bundled, stamped
from goqueue_operator.settings import load_settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]


def live(annotation: str | None) -> dict[str, Any]:
    annotations = {"other": "x"} | ({VERSION_ANNOTATION: annotation} if annotation is not None else {})
    return {"metadata": {"name": "goqueuetopics.goqueue.io", "annotations": annotations}}


def test_the_bundle_is_the_schema_of_record() -> None:
    records = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    assert load_bundled() == records
    assert bundled_names() == ["goqueueclusters.goqueue.io", "goqueueconsumergroups.goqueue.io",
                               "goqueuerebalances.goqueue.io", "goqueuetopics.goqueue.io", "goqueueusers.goqueue.io"]


def test_the_rbac_allows_patching_exactly_the_bundled_crds() -> None:
    (role,) = [d for d in yaml.safe_load_all((REPO / "operator" / "deploy" / "20-rbac.yaml").read_text())
               if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "goqueue-operator"]
    patching = [r for r in role["rules"] if "customresourcedefinitions" in r["resources"] and "patch" in r["verbs"]]
    assert patching == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                         "resourceNames": ["goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io",
                                           "goqueueconsumergroups.goqueue.io", "goqueueusers.goqueue.io",
                                           "goqueuerebalances.goqueue.io"],
                         "verbs": ["get", "patch"]}]
    assert sorted(patching[0]["resourceNames"]) == bundled_names()


@pytest.mark.parametrize(("annotation", "own", "action"), [
    (None, "0.1.0", "apply"),            # installed by helm's crds/ or kubectl: no operator wrote it
    ("0.1.0", "0.1.0", "apply"),         # ours (a restart): applying again changes nothing
    ("0.0.9", "0.1.0", "apply"),         # an older operator's: upgrade
    ("0.1.0rc1", "0.1.0", "apply"),      # a release candidate is older than the release (PEP 440)
    ("0.2.0", "0.1.0", "skip"),          # a newer operator's: never downgrade (a rollback of the operator)
    ("0.10.0", "0.9.0", "skip"),         # compared as versions, not as text ("0.10.0" < "0.9.0" as strings)
    ("0.1.1.dev0", "0.1.0", "skip"),
    ("not-a-version", "0.1.0", "skip"),  # cannot be compared: left alone rather than guessed
])
def test_decide_never_downgrades(annotation: str | None, own: str, action: str) -> None:
    decision = decide("goqueuetopics.goqueue.io", live(annotation), own)
    assert decision.action == action
    assert decision.name == "goqueuetopics.goqueue.io"
    assert decision.reason


def test_an_absent_crd_is_applied() -> None:
    assert decide("goqueuetopics.goqueue.io", None, __version__).action == "apply"


def test_the_applied_crd_carries_the_operator_version_and_keeps_the_rest() -> None:
    (crd, *_) = load_bundled()
    applied = stamped(crd, "1.2.3")
    assert applied["metadata"]["annotations"] == {VERSION_ANNOTATION: "1.2.3"}
    assert {k: v for k, v in applied.items() if k != "metadata"} == {k: v for k, v in crd.items() if k != "metadata"}
    assert applied["metadata"]["labels"] == crd["metadata"]["labels"]
    assert "annotations" not in crd["metadata"]  # the bundle itself is not modified


def test_management_is_on_by_default_and_can_be_turned_off() -> None:
    assert load_settings({}).manage_crds is True
    assert load_settings({"GOQUEUE_OPERATOR_MANAGE_CRDS": "false"}).manage_crds is False
