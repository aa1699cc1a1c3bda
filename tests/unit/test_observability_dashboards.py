"""The Grafana dashboards of deploy/observability: the runbook's four, committed exactly as their generator writes
them, well-formed for Grafana, and every query valid PromQL (`promtool check rules` on the queries turned into
recording rules). That their metric names are really exported is checked against a running broker by
tests/integration/charts/test_observability_metrics.py."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "observability" / "dashboards"
TITLES = {"goqueue-overview.json": "GoQueue Overview", "goqueue-topics.json": "GoQueue Topics",
          "goqueue-consumers.json": "GoQueue Consumers", "goqueue-nodes.json": "GoQueue Nodes"}
# Grafana's variables, replaced by what Grafana would put there.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "goqueue", "$pod": ".*", "$topic": ".*",
                     "$group": ".*"}


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


def test_the_runbooks_four_dashboards() -> None:
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


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install prometheus (Debian ships /usr/bin/promtool)"
    rules = []
    for name, dashboard in dashboards().items():
        for i, query in enumerate(queries(dashboard)):
            expr = query
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:{name.removesuffix('.json').replace('-', '_')}:{i}", "expr": expr})
    variable_queries = [v["query"]["query"] for d in dashboards().values() for v in d["templating"]["list"]
                        if v["type"] == "query"]
    for query in variable_queries:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert match, f"unexpected variable query {query}"
        rules.append({"record": "dashboard:variable", "expr": match[1].replace("$namespace", "goqueue")})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
