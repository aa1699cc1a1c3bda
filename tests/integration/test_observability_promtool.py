"""promtool on deploy/observability: the alert rules are valid (`promtool check rules`) and behave as their rule
tests say (`promtool test rules`), every dashboard query is valid PromQL (the queries turned into recording rules
for `promtool check rules`), and so is the operator's PrometheusRule (the pack scoped to one cluster). Integration,
not unit: each runs promtool as a subprocess. The content checks (thresholds, runbook links, panels, the operator's
rule equal to the pack) are tests/unit/test_observability_rules.py, test_observability_dashboards.py and
operator/test_operator_resources.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from goqueue_operator.resources.monitoring import build_prometheus_rule
from goqueue_operator.views import ClusterView

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "observability" / "prometheus" / "goqueue-alerts.yaml"
RULE_TESTS = REPO / "deploy" / "observability" / "prometheus" / "tests" / "goqueue-alerts.test.yaml"
DASHBOARDS = REPO / "deploy" / "observability" / "dashboards"
# Grafana's variables, replaced by what Grafana would put there.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": "goqueue", "$pod": ".*", "$topic": ".*",
                     "$group": ".*"}


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is not installed: apt-get install prometheus (Debian ships /usr/bin/promtool)"
    return found


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = subprocess.run([promtool(), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            timeout=120, check=False, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    dashboards = {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
    assert dashboards, f"no dashboards in {DASHBOARDS}"
    rules = []
    for name, dashboard in dashboards.items():
        queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
        for i, query in enumerate(queries):
            expr = query
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            rules.append({"record": f"dashboard:{name.removesuffix('.json').replace('-', '_')}:{i}", "expr": expr})
    variable_queries = [v["query"]["query"] for d in dashboards.values() for v in d["templating"]["list"]
                        if v["type"] == "query"]
    for i, query in enumerate(variable_queries):
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
        assert match, f"unexpected variable query {query}"
        # distinct names: promtool's lint reports duplicate recording rules (still exiting 0) instead of SUCCESS
        rules.append({"record": f"dashboard:variable:{i}", "expr": match[1].replace("$namespace", "goqueue")})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_operators_prometheus_rule_is_valid(tmp_path: Path) -> None:
    view = ClusterView.from_body({"metadata": {"name": "orders", "namespace": "shop", "uid": "u", "generation": 1},
                                  "spec": {}})
    spec = build_prometheus_rule(view)["spec"]
    path = tmp_path / "operator-rule.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(spec['groups'][0]['rules'])} rules found" in result.stdout
