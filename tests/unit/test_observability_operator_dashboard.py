"""The Operator dashboard asks only for what the operator exports, with the labels it aggregates by.

The operator's metrics are exercised as a reconciling operator would (an ok and a failed reconcile, roller steps,
progress reports of the three procedures, executor actions), then every selector of goqueue-operator.json must name
a series of that exposition, and every `by (...)` label must be a label of the series it aggregates or one that
Prometheus adds when it scrapes the operator's pod (namespace, pod). `up` is Prometheus's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from goqueue_operator.metrics import PROCEDURES, OperatorMetrics, Progress

pytestmark = pytest.mark.unit

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "observability" / "dashboards" / "goqueue-operator.json"
SCRAPE_LABELS = {"namespace", "pod", "le"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
AGGREGATION = re.compile(r"\bby \(([^)]*)\) \(")


def exercised() -> OperatorMetrics:
    metrics = OperatorMetrics()
    with metrics.reconcile("GoQueueCluster"):
        metrics.rollout_steps.labels("Restarting").inc()
    with pytest.raises(RuntimeError), metrics.reconcile("GoQueueTopic"):
        raise RuntimeError("broker not ready")
    for procedure in PROCEDURES:
        metrics.report(procedure, "uid-a", Progress(active=True, pending=1))
    metrics.procedure_steps.labels("scale", "Rebalancing").inc()
    return metrics


def series_labels(metrics: OperatorMetrics) -> dict[str, set[str]]:
    """Series name → the labels its samples carry."""
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_every_selector_names_an_exported_series_scoped_to_the_operators_pods() -> None:
    exported = series_labels(exercised())
    selectors = [match for expr in expressions() for match in SELECTOR.findall(expr)]
    assert len(selectors) >= 15, selectors  # the extraction found the queries
    unknown = sorted({name for name, _ in selectors if name not in exported and name != "up"})
    assert unknown == [], f"queried but not exported by the operator: {unknown}"
    for name, matchers in selectors:
        assert 'namespace="$namespace"' in matchers, name
        assert 'pod=~"$pod"' in matchers, name


def test_every_aggregation_label_is_on_the_series() -> None:
    exported = series_labels(exercised())
    for expr in expressions():
        names = {name for name, _ in SELECTOR.findall(expr)}
        available = set().union(*(exported.get(name, set()) for name in names)) | SCRAPE_LABELS
        for group in AGGREGATION.findall(expr):
            labels = {label.strip() for label in group.split(",")}
            assert labels <= available, f"{expr}: no label {labels - available}"


def test_the_progress_panels_read_the_progress_gauges() -> None:
    """The issue's three: reconcile rate, errors, roll/resize/scale progress."""
    text = "\n".join(expressions())
    for name in ("goqueue_operator_reconciles_total", "goqueue_operator_reconcile_errors_total",
                 "goqueue_operator_roll_brokers_pending", "goqueue_operator_resize_claims_pending",
                 "goqueue_operator_scale_brokers_pending", "goqueue_operator_procedures_blocked",
                 "goqueue_operator_procedure_steps_total"):
        assert f"{name}{{" in text, name
