"""ServiceMonitor and PrometheusRule (Prometheus Operator), applied only when their CRDs exist in the cluster.

The rules are the runbook's broker alerts as deploy/observability/prometheus/goqueue-alerts.yaml defines them
(consumer lag > 5000 / > 10000, disk > 80 % / > 90 %, a broker down), scoped to one cluster.
"""

from __future__ import annotations

from typing import Any

from goqueue_operator.resources import labels, ports
from goqueue_operator.resources.metadata import child_metadata
from goqueue_operator.resources.names import child_name
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
                           "interval": cluster.spec.monitoring.scrape_interval}],
        },
    }


RUNBOOK = "https://github.com/goqueue/goqueue/blob/main/docs/RUNBOOK.md"


def _alert(name: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
            "annotations": {"summary": summary, "runbook_url": f"{RUNBOOK}#alert-{name.lower()}"}}


def build_prometheus_rule(cluster: ClusterView) -> dict[str, Any]:
    """The runbook's broker alerts from deploy/observability/prometheus/goqueue-alerts.yaml (same names,
    severities, thresholds and durations: a unit test compares them), scoped to this cluster's metrics Service so
    two clusters in one namespace alert separately. The full pack, operator alerts included, is the chart's."""
    scope = f'job="goqueue", namespace="{cluster.namespace}", service="{child_name(cluster.name, "metrics")}"'
    lag = f"max by (namespace, group, topic, partition) (goqueue_consumer_lag{{{scope}}})"
    disk = f"max by (namespace, pod) (goqueue_disk_usage_percent{{{scope}}})"
    down = (f"(max by (namespace, pod) (up{{{scope}}}) == 0)\nor\n"
            f"(max by (namespace, pod) (goqueue_broker_ready{{{scope}}}) == 0)")
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": child_metadata(cluster, "prometheus-rule"),
        "spec": {"groups": [{"name": f"goqueue.{cluster.namespace}.{cluster.name}", "rules": [
            _alert("GoQueueBrokerDown", down, "2m", "critical",
                   "GoQueue broker {{ $labels.namespace }}/{{ $labels.pod }} is down or not ready."),
            _alert("GoQueueHighDiskUsage", f"{disk} > 80", "5m", "warning",
                   "GoQueue broker {{ $labels.pod }} data volume is over 80% full."),
            _alert("GoQueueHighDiskUsage", f"{disk} > 90", "5m", "critical",
                   "GoQueue broker {{ $labels.pod }} data volume is over 90% full."),
            _alert("GoQueueHighConsumerLag", f"{lag} > 5000", "10m", "warning",
                   "Group {{ $labels.group }} is {{ $value }} records behind on {{ $labels.topic }}."),
            _alert("GoQueueHighConsumerLag", f"{lag} > 10000", "10m", "critical",
                   "Group {{ $labels.group }} is {{ $value }} records behind on {{ $labels.topic }}."),
        ]}]},
    }
