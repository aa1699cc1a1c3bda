"""The Grafana dashboards of deploy/observability: the runbook's four and the operator's, committed exactly as their
generator writes them, and well-formed for Grafana. That every query is valid PromQL is checked by promtool in
tests/integration/test_observability_promtool.py; that their metric names are really exported, against a running
broker by tests/integration/charts/test_observability_metrics.py."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "observability" / "dashboards"
TITLES = {"goqueue-overview.json": "GoQueue Overview", "goqueue-topics.json": "GoQueue Topics",
          "goqueue-consumers.json": "GoQueue Consumers", "goqueue-nodes.json": "GoQueue Nodes",
          "goqueue-operator.json": "GoQueue Operator"}


def generator() -> ModuleType:
    """deploy/ is not a package: load the script by path (registered, as its dataclasses need)."""
    name = "goqueue_observability_build_dashboards"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DASHBOARDS / "build_dashboards.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_runbooks_four_dashboards_and_the_operators() -> None:
    found = dashboards()
    assert {name: d["title"] for name, d in found.items()} == TITLES
    assert len({d["uid"] for d in found.values()}) == len(found)


def test_the_committed_json_is_what_the_generator_writes() -> None:
    rendered = generator().render()
    assert set(rendered) == set(TITLES)
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} differs from build_dashboards.py: run python deploy/observability/dashboards/build_dashboards.py")


@pytest.mark.parametrize("name", sorted(TITLES))
def test_panels_are_well_formed(name: str) -> None:
    dashboard = dashboards()[name]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "pod"} <= variables
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: undefined variables {used - variables}"
