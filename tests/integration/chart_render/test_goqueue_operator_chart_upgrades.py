"""charts/goqueue-operator rendered by `helm template`: what issue 16 item 4 added — the operator upgrading its own
CRDs (crds.manage), the ServiceMonitor, topology spread, extra volumes/containers and the `helm test` hook. The
rest of the chart's render tests: test_goqueue_operator_chart.py; the CRD upgrade itself on a real API server:
tests/integration/operator/test_operator_crd_upgrade.py."""

from __future__ import annotations

from typing import Any

import pytest
from helm_chart import Helm, Obj, Rendered
from test_goqueue_operator_chart import env_of, operator_container, render

from goqueue_operator.bundled_crds import bundled_names

pytestmark = pytest.mark.integration  # helm renders: a subprocess

CRD_PATCH_RULE = {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                  "resourceNames": ["goqueueclusters.goqueue.io", "goqueuetopics.goqueue.io",
                                    "goqueueconsumergroups.goqueue.io"], "verbs": ["get", "patch"]}


def crd_rules(rendered: Rendered, name: str = "goqueue-operator") -> list[dict[str, Any]]:
    rules: list[Obj] = rendered.get("ClusterRole", name)["rules"]
    return [r for r in rules if "customresourcedefinitions" in r["resources"]]


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "watchNamespaces"])
def test_managed_crds_get_exactly_their_patch_rule(helm: Helm, namespaced: bool) -> None:
    scope = ("--set", "watchNamespaces={team-a}") if namespaced else ()
    rendered = render(helm, *scope)
    assert crd_rules(rendered) == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                                    "verbs": ["list", "watch"]}, CRD_PATCH_RULE]
    assert sorted(CRD_PATCH_RULE["resourceNames"]) == bundled_names()
    assert env_of(operator_container(rendered))["GOQUEUE_OPERATOR_MANAGE_CRDS"] == "true"


def test_unmanaged_crds_leave_the_operator_only_its_reads(helm: Helm) -> None:
    rendered = render(helm, "--set", "crds.manage=false")
    assert crd_rules(rendered) == [{"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
                                    "verbs": ["list", "watch"]}]
    assert env_of(operator_container(rendered))["GOQUEUE_OPERATOR_MANAGE_CRDS"] == "false"
