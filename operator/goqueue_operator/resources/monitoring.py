"""ServiceMonitor and PrometheusRule (Prometheus Operator), applied only when their CRDs exist in the cluster.

The rule thresholds are the runbook's (Quick Reference and Alert Runbooks): consumer lag warning > 5000,
critical > 10000; disk usage warning > 80 %, critical > 90 %; a broker down is critical.
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
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [cluster.namespace]},
            "endpoints": [{"port": ports.METRICS, "path": "/metrics",
                           "interval": cluster.spec.monitoring.scrape_interval}],
        },
    }


def _alert(name: str, expr: str, duration: str, severity: str, summary: str) -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
            "annotations": {"summary": summary, "runbook": f"docs/RUNBOOK.md#alert-{name.lower()}"}}


def build_prometheus_rule(cluster: ClusterView) -> dict[str, Any]:
    scope = f'namespace="{cluster.namespace}", service="{child_name(cluster.name, "metrics")}"'
    lag = f"max by (group, topic) (goqueue_consumer_lag{{{scope}}})"
    disk = f"max by (pod) (goqueue_disk_usage_percent{{{scope}}})"
    return {
        "apiVersion": MONITORING_API,
        "kind": "PrometheusRule",
        "metadata": child_metadata(cluster, "prometheus-rule"),
        "spec": {"groups": [{"name": f"goqueue.{cluster.name}", "rules": [
            _alert("GoQueueHighConsumerLag", f"{lag} > 5000", "10m", "warning",
                   "Consumers of {{ $labels.group }} are falling behind on {{ $labels.topic }}"),
            _alert("GoQueueHighConsumerLag", f"{lag} > 10000", "10m", "critical",
                   "Consumers of {{ $labels.group }} are far behind on {{ $labels.topic }}"),
            _alert("GoQueueHighDiskUsage", f"{disk} > 80", "5m", "warning", "Broker {{ $labels.pod }} disk over 80%"),
            _alert("GoQueueHighDiskUsage", f"{disk} > 90", "5m", "critical", "Broker {{ $labels.pod }} disk over 90%"),
            _alert("GoQueueBrokerDown", f"up{{{scope}}} == 0", "2m", "critical",
                   "Broker {{ $labels.pod }} is not answering scrapes"),
        ]}]},
    }
