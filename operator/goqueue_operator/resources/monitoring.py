"""ServiceMonitor and PrometheusRule (Prometheus Operator), applied only when their CRDs exist in the cluster.

The rules are every alert on broker metrics of deploy/observability/prometheus/goqueue-alerts.yaml, the
promtool-tested pack the chart ships, read from a byte-identical copy packaged beside this module (a unit test
compares the two; the operator's image holds no deploy/ folder): same names, severities, durations, annotations
and expressions, each series selector narrowed to this cluster's metrics Service. Left out: the pack's
`goqueue.operator` group (GoQueueRolloutBlocked), which reads the operator's own gauge — one series for every
cluster the operator serves, scraped from the operator's pod — so no cluster's rule can scope it, and one copy per
cluster would page once per cluster.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml

from goqueue_operator.resources import labels, ports
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import TLS_CA_KEY, child_name
from goqueue_operator.resources.tls import ca_bundle_secret
from goqueue_operator.views import ClusterView

MONITORING_API = "monitoring.coreos.com/v1"


def build_service_monitor(cluster: ClusterView) -> dict[str, Any]:
    selector = {labels.INSTANCE: cluster.name, labels.NAME: labels.APP, labels.SERVICE_ROLE: "metrics"}
    return {
        "apiVersion": MONITORING_API,
        "kind": "ServiceMonitor",
        "metadata": child_metadata(cluster, "service-monitor"),
        "spec": {
            # job="goqueue" (the Service's app.kubernetes.io/name), as deploy/observability's alerts and
            # dashboards expect, whichever cluster and release the metrics come from.
            "jobLabel": labels.NAME,
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [cluster.namespace]},
            "endpoints": [{"port": ports.METRICS, "path": "/metrics",
                           "interval": cluster.spec.monitoring.scrape_interval, **_scrape_tls(cluster)}],
        },
    }


def _scrape_tls(cluster: ClusterView) -> dict[str, Any]:
    """With spec.tls the metrics port speaks https: Prometheus verifies the broker against the cluster's CA
    bundle as the metrics Service's name (one the broker certificate carries, pki/sans.py)."""
    if not cluster.spec.tls.enabled:
        return {}
    return {"scheme": "https", "tlsConfig": {
        "ca": {"secret": {"name": ca_bundle_secret(cluster), "key": TLS_CA_KEY}},
        "serverName": f"{child_name(cluster.name, 'metrics')}.{cluster.namespace}.svc"}}


ALERT_PACK = "goqueue-alerts.yaml"  # = deploy/observability/prometheus/goqueue-alerts.yaml
OPERATOR_ALERT_GROUP = "goqueue.operator"
# A series selector of the pack's expressions: broker metrics are goqueue_*, plus Prometheus's `up`. String
# literals are matched first so that a quoted word is never taken for a metric.
_SERIES = re.compile(r'"(?:[^"\\]|\\.)*"|\b(up|goqueue_\w+)\b(?:\{([^}]*)\})?')
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')


@cache
def broker_alerts() -> tuple[dict[str, Any], ...]:
    """The pack's alerts on broker metrics, as the file writes them (read once; callers copy before changing)."""
    pack = yaml.safe_load(resources.files(__package__).joinpath(ALERT_PACK).read_text(encoding="utf-8"))
    return tuple(rule for group in pack["groups"] if group["name"] != OPERATOR_ALERT_GROUP
                 for rule in group["rules"] if "alert" in rule)


def scope_expr(expr: str, scope: dict[str, str]) -> str:
    """Every series selector of `expr` narrowed to `scope` (label → value): the scope's matchers first, then the
    selector's own on other labels (on a label the scope sets, the scope's value wins)."""
    def narrowed(match: re.Match[str]) -> str:
        if match[1] is None:
            return match[0]  # a string literal
        own = [f"{label}{op}{value}" for label, op, value in _MATCHER.findall(match[2] or "") if label not in scope]
        return match[1] + "{" + ", ".join([*(f'{label}="{value}"' for label, value in scope.items()), *own]) + "}"

    return _SERIES.sub(narrowed, expr)


def build_prometheus_rule(cluster: ClusterView) -> dict[str, Any]:
    """The pack's broker alerts scoped to this cluster's metrics Service (job "goqueue", as the ServiceMonitor
    names it), so two clusters in one namespace alert separately. A unit test checks both ways that the rule holds
    the pack's alerts and nothing else, equal but for the scope."""
    scope = {"job": labels.APP, "namespace": cluster.namespace, "service": child_name(cluster.name, "metrics")}
    rules = [{**rule, "expr": scope_expr(rule["expr"], scope), "labels": dict(rule["labels"]),
              "annotations": dict(rule["annotations"])} for rule in broker_alerts()]
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": child_metadata(cluster, "prometheus-rule"),
        "spec": {"groups": [{"name": f"goqueue.{cluster.namespace}.{cluster.name}", "rules": rules}]},
    }
