"""Writes the GoQueue Grafana dashboards (Overview, Topics, Consumers, Nodes, Operator) as JSON beside this file.

Why generated: five dashboards share their variables, datasource, links and panel shapes; written by hand they
drift apart. The JSON is committed (Grafana's sidecar and the charts ship it as is), and
tests/unit/test_observability_dashboards.py fails when it differs from what this script writes, so edit here and run
`python deploy/observability/dashboards/build_dashboards.py`.

Queries use only metrics the brokers export (checked against a real broker by
tests/integration/charts/test_observability_metrics.py), plus the kubelet's container CPU and memory metrics on the
Nodes dashboard. Brokers export no namespace or pod label: Prometheus adds them when it scrapes the goqueue-metrics
Service. The Operator dashboard queries only what goqueue_operator/metrics.py exports (checked by
tests/unit/test_observability_operator_dashboard.py against its exposition), scoped by the namespace and pod of the
operator's own pods (the operator chart's ServiceMonitor); the broker chart and the operator chart both ship it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BROKERS = 'namespace="$namespace", pod=~"$pod"'
RATE = "$__rate_interval"
WIDTH = 24  # Grafana's grid width


@dataclass
class Target:
    expr: str
    legend: str = "__auto"


@dataclass
class Panel:
    title: str
    description: str
    targets: list[Target]
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])
    stack: bool = False
    stat_text: str = "value"  # stat panels: "name" shows the series' legend (which broker) instead of its value


def _render_panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {"datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend, "range": True,
             "refId": chr(ord("A") + i)}
            for i, t in enumerate(panel.targets)
        ],
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": [
                    {"color": color, "value": value} for value, color in panel.thresholds]},
            },
            "overrides": [],
        },
    }
    if panel.kind == "stat":
        rendered["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
        rendered["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                               "colorMode": "background", "graphMode": "none", "textMode": panel.stat_text}
    else:
        rendered["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if len(panel.thresholds) > 1 else "off"},
        }
        rendered["options"] = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return rendered


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right, top to bottom, wrapping at the grid's width."""
    rendered, x, y, row_height = [], 0, 0, 0
    for i, panel in enumerate(panels, start=1):
        if x + panel.width > WIDTH:
            x, y, row_height = 0, y + row_height, 0
        rendered.append(_render_panel(panel, i, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return rendered


def _query_variable(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    return {
        "name": name, "label": label, "type": "query", "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
        "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi,
        **({"allValue": ".*", "current": {"text": "All", "value": "$__all"}} if multi else {}),
    }


def _variables(*extra: dict[str, Any], metric: str = "goqueue_broker_ready", pod_label: str = "Broker"
               ) -> dict[str, Any]:
    """Namespace and pod of the series of `metric`: the brokers' by default, the operator's on its dashboard."""
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1},
        _query_variable("namespace", "Namespace", f"label_values({metric}, namespace)", multi=False),
        _query_variable("pod", pod_label, f'label_values({metric}{{namespace="$namespace"}}, pod)', multi=True),
        *extra,
    ]}


def _dashboard(uid: str, title: str, description: str, panels: list[Panel],
               variables: dict[str, Any]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["goqueue"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "links": [{"type": "dashboards", "tags": ["goqueue"], "asDropdown": True, "title": "GoQueue dashboards",
                   "includeVars": True, "keepTime": True}],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": variables,
        "panels": _layout(panels),
    }


def overview() -> dict[str, Any]:
    scope = 'namespace="$namespace"'
    user_topics = f'{scope}, topic!~"__.*"'
    panels = [
        Panel("Brokers ready", "Brokers whose /readyz is true (storage recovered, quorum reached, writes accepted).",
              [Target(f"sum(goqueue_broker_ready{{{scope}}})")], kind="stat", width=4, height=4),
        Panel("Brokers in quorum", "Brokers the metadata leader sees connected to the Raft quorum.",
              [Target(f"max(goqueue_cluster_brokers_alive{{{scope}}})")], kind="stat", width=4, height=4),
        Panel("Metadata leader", "The broker leading the metadata Raft group (the controller).",
              [Target(f"max by (pod) (goqueue_raft_leader{{{scope}}}) == 1", "{{pod}}")], kind="stat", width=4,
              height=4, stat_text="name"),
        Panel("Offline partitions", "Partitions without a leader or found corrupt. Alert: GoQueueOfflinePartitions.",
              [Target(f"sum(goqueue_offline_partitions{{{scope}}})")], kind="stat", width=4, height=4,
              thresholds=[(None, "green"), (1, "red")]),
        Panel("Under-replicated partitions",
              "Partitions with a replica out of sync (a reassignment's new replicas still copying excepted).",
              [Target(f"sum(goqueue_under_replicated_partitions{{{scope}}})")], kind="stat", width=4, height=4,
              thresholds=[(None, "green"), (1, "orange")]),
        Panel("Max consumer lag", "Largest lag of any group on any partition (runbook: warning 5000, critical 10000).",
              [Target(f"max(goqueue_consumer_lag{{{scope}}})")], kind="stat", width=4, height=4,
              thresholds=[(None, "green"), (5000, "orange"), (10000, "red")]),
        Panel("Messages in", "Records produced per second (goqueue_messages_total; internal topics excluded). "
              "Stagnant is critical: GoQueueMessagesStagnant.",
              [Target(f"sum(rate(goqueue_messages_total{{{user_topics}}}[{RATE}]))", "produced")], unit="ops"),
        Panel("Messages out", "Records returned to consumers and followers per second.",
              [Target(f"sum(rate(goqueue_messages_fetched_total{{{user_topics}}}[{RATE}]))", "fetched"),
               Target(f"sum(rate(goqueue_consumer_delivered_total{{{scope}}}[{RATE}]))", "delivered to groups")],
              unit="ops"),
        Panel("Produce latency p99", "goqueue_message_latency_p99 per broker (seconds; runbook: warning 50 ms, "
              "critical 100 ms), and the p99 of the histogram over all brokers.",
              [Target(f"max by (pod) (goqueue_message_latency_p99{{{scope}}})", "{{pod}}"),
               Target(f"histogram_quantile(0.99, sum by (le) (rate(goqueue_message_latency_seconds_bucket"
                      f"{{{scope}}}[{RATE}])))", "cluster (histogram)")],
              unit="s", thresholds=[(None, "green"), (0.05, "orange"), (0.1, "red")]),
        Panel("Throughput", "Record batch bytes appended and fetched per second.",
              [Target(f"sum(rate(goqueue_bytes_in_total{{{scope}}}[{RATE}]))", "in"),
               Target(f"sum(rate(goqueue_bytes_out_total{{{scope}}}[{RATE}]))", "out")], unit="Bps"),
        Panel("Disk usage", "Used space of each broker's data volume (runbook: warning 80 %, critical 90 %).",
              [Target(f"max by (pod) (goqueue_disk_usage_percent{{{scope}}})", "{{pod}}")], unit="percent",
              thresholds=[(None, "green"), (80, "orange"), (90, "red")]),
        Panel("Consumer lag by group", "Records each group has not settled, summed over partitions.",
              [Target(f"sum by (group) (goqueue_consumer_lag{{{scope}}})", "{{group}}")]),
    ]
    return _dashboard("goqueue-overview", "GoQueue Overview", "High-level GoQueue cluster health.", panels,
                      _variables())


def topics() -> dict[str, Any]:
    topic_variable = _query_variable(
        "topic", "Topic", 'label_values(goqueue_log_end_offset{namespace="$namespace"}, topic)', multi=True)
    scope = 'namespace="$namespace", topic=~"$topic"'
    panels = [
        Panel("Produce rate by topic", "Records appended per second.",
              [Target(f"sum by (topic) (rate(goqueue_messages_total{{{scope}}}[{RATE}]))", "{{topic}}")],
              unit="ops"),
        Panel("Fetch rate by topic", "Records returned to consumers and followers per second.",
              [Target(f"sum by (topic) (rate(goqueue_messages_fetched_total{{{scope}}}[{RATE}]))", "{{topic}}")],
              unit="ops"),
        Panel("Bytes in by topic", "Record batch bytes appended per second.",
              [Target(f"sum by (topic) (rate(goqueue_bytes_in_total{{{scope}}}[{RATE}]))", "{{topic}}")],
              unit="Bps"),
        Panel("Bytes out by topic", "Record batch bytes fetched per second.",
              [Target(f"sum by (topic) (rate(goqueue_bytes_out_total{{{scope}}}[{RATE}]))", "{{topic}}")],
              unit="Bps"),
        Panel("Size on disk by topic", "Bytes of every replica's log (a topic with replication factor 3 counts three "
              "times).", [Target(f"sum by (topic) (goqueue_log_size_bytes{{{scope}}})", "{{topic}}")],
              unit="bytes"),
        Panel("Segments by topic", "Log segments of every replica.",
              [Target(f"sum by (topic) (goqueue_log_segments{{{scope}}})", "{{topic}}")]),
        Panel("High watermark by partition", "First offset not yet visible to consumers, per partition.",
              [Target(f"max by (topic, partition) (goqueue_high_watermark{{{scope}}})", "{{topic}}/{{partition}}")]),
        Panel("Retained records by partition", "Log end offset minus log start offset on the leader.",
              [Target(f"max by (topic, partition) (goqueue_log_end_offset{{{scope}}}) - max by (topic, partition) "
                      f"(goqueue_log_start_offset{{{scope}}})", "{{topic}}/{{partition}}")]),
        Panel("In-sync replicas by partition", "ISR size reported by each partition's leader.",
              [Target(f"max by (topic, partition) (goqueue_partition_isr_size{{{scope}}})",
                      "{{topic}}/{{partition}}")]),
        Panel("Retention and compaction", "Segments deleted by retention and records removed by compaction.",
              [Target(f"sum by (topic) (increase(goqueue_retention_deleted_segments_total{{{scope}}}[1h]))",
                      "{{topic}} segments deleted / h"),
               Target(f"sum by (topic) (increase(goqueue_compaction_removed_records_total{{{scope}}}[1h]))",
                      "{{topic}} records compacted / h")]),
    ]
    return _dashboard("goqueue-topics", "GoQueue Topics", "Per-topic throughput, size and replication.", panels,
                      _variables(topic_variable))


def consumers() -> dict[str, Any]:
    group_variable = _query_variable(
        "group", "Group", 'label_values(goqueue_group_members{namespace="$namespace"}, group)', multi=True)
    scope = 'namespace="$namespace", group=~"$group"'
    panels = [
        Panel("Lag by group and topic", "Records not settled (runbook: warning 5000, critical 10000 per partition).",
              [Target(f"sum by (group, topic) (goqueue_consumer_lag{{{scope}}})", "{{group}} {{topic}}")],
              thresholds=[(None, "green"), (5000, "orange"), (10000, "red")]),
        Panel("Lag by partition", "Records not settled per partition.",
              [Target(f"max by (group, topic, partition) (goqueue_consumer_lag{{{scope}}})",
                      "{{group}} {{topic}}/{{partition}}")]),
        Panel("Delivered", "Records delivered to each group per second (first deliveries and redeliveries).",
              [Target(f"sum by (group, topic) (rate(goqueue_consumer_delivered_total{{{scope}}}[{RATE}]))",
                      "{{group}} {{topic}}")], unit="ops"),
        Panel("Acks, nacks and redeliveries", "Shared mode: settled and refused messages, and redeliveries "
              "(lease expired or nacked).",
              [Target(f"sum by (group) (rate(goqueue_consumer_acks_total{{{scope}}}[{RATE}]))", "{{group}} acks"),
               Target(f"sum by (group) (rate(goqueue_consumer_nacks_total{{{scope}}}[{RATE}]))", "{{group}} nacks"),
               Target(f"sum by (group) (rate(goqueue_consumer_redeliveries_total{{{scope}}}[{RATE}]))",
                      "{{group}} redeliveries"),
               Target(f"sum by (group) (rate(goqueue_consumer_lease_expirations_total{{{scope}}}[{RATE}]))",
                      "{{group}} lease expirations")], unit="ops"),
        Panel("Inflight and capacity", "Leased messages, unacked messages (leased plus waiting for redelivery: what "
              "counts against the capacity) and the group's inflightCapacity.",
              [Target(f"sum by (group) (goqueue_inflight_messages{{{scope}}})", "{{group}} leased"),
               Target(f"sum by (group) (goqueue_consumer_unacked_messages{{{scope}}})", "{{group}} unacked"),
               Target(f"max by (group) (goqueue_inflight_capacity{{{scope}}})", "{{group}} capacity")]),
        Panel("Dead-lettered", "Messages moved to the dead-letter topic after maxDeliveries, per 10 minutes.",
              [Target(f"sum by (group, topic) (increase(goqueue_dead_lettered_messages_total{{{scope}}}[10m]))",
                      "{{group}} {{topic}}")], thresholds=[(None, "green"), (1, "orange")]),
        Panel("Members", "Live members (ordered mode) or recently seen consumers (shared mode).",
              [Target(f"sum by (group) (goqueue_group_members{{{scope}}})", "{{group}}")]),
        Panel("Paused", "1 while the group gets no deliveries (goqueue-admin consumer pause).",
              [Target(f"max by (group) (goqueue_group_paused{{{scope}}})", "{{group}}")]),
        Panel("Rebalances and session expirations", "Generations started, and members removed for missing their "
              "session timeout, per 10 minutes.",
              [Target(f"sum by (group) (increase(goqueue_group_rebalances_total{{{scope}}}[10m]))",
                      "{{group}} rebalances"),
               Target(f"sum by (group) (increase(goqueue_group_session_expirations_total{{{scope}}}[10m]))",
                      "{{group}} session expirations")]),
        Panel("Commits and refusals", "Offset commits per second, and consume requests refused at inflightCapacity.",
              [Target(f"sum by (group) (rate(goqueue_consumer_offset_commits_total{{{scope}}}[{RATE}]))",
                      "{{group}} commits"),
               Target(f"sum by (group) (rate(goqueue_inflight_limit_reached_total{{{scope}}}[{RATE}]))",
                      "{{group}} refused at capacity")], unit="ops"),
    ]
    return _dashboard("goqueue-consumers", "GoQueue Consumers", "Consumer lag and processing rates per group.",
                      panels, _variables(group_variable))


def nodes() -> dict[str, Any]:
    containers = 'namespace="$namespace", pod=~"$pod", container="broker"'
    panels = [
        Panel("Disk usage", "Used space of the data volume (runbook: warning 80 %, critical 90 %).",
              [Target(f"max by (pod) (goqueue_disk_usage_percent{{{BROKERS}}})", "{{pod}}")], unit="percent",
              thresholds=[(None, "green"), (80, "orange"), (90, "red")]),
        Panel("Free disk and 4 h forecast", "Free bytes now, and predicted in 4 hours at the rate of the last 6 "
              "(GoQueueDiskFullSoon fires below 0).",
              [Target(f"max by (pod) (goqueue_disk_free_bytes{{{BROKERS}}})", "{{pod}} free"),
               Target(f"max by (pod) (predict_linear(goqueue_disk_free_bytes{{{BROKERS}}}[6h], 4 * 3600))",
                      "{{pod}} in 4 h"),
               Target(f"max by (pod) (goqueue_disk_total_bytes{{{BROKERS}}})", "{{pod}} size")], unit="bytes"),
        Panel("CPU", "CPU used by each broker container (from the kubelet).",
              [Target(f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{containers}}}[{RATE}]))", "{{pod}}")],
              unit="short"),
        Panel("Memory", "Working set of each broker container (from the kubelet); the page cache is not in it.",
              [Target(f"max by (pod) (container_memory_working_set_bytes{{{containers}}})", "{{pod}}")],
              unit="bytes"),
        Panel("fsync p99", "fdatasync duration per log per group commit: the disk's share of produce latency.",
              [Target(f"histogram_quantile(0.99, sum by (pod, le) (rate(goqueue_fsync_duration_seconds_bucket"
                      f"{{{BROKERS}}}[{RATE}])))", "{{pod}}")], unit="s"),
        Panel("Batches per group commit", "Batches sharing one fdatasync round (more under load is the design).",
              [Target(f"sum by (pod) (rate(goqueue_group_commit_batches_sum{{{BROKERS}}}[{RATE}])) / sum by (pod) "
                      f"(rate(goqueue_group_commit_batches_count{{{BROKERS}}}[{RATE}]))", "{{pod}}")]),
        Panel("Write queue depth", "Appends waiting for the writer thread (produce answers OVERLOADED at "
              "storage.writeQueueMax).", [Target(f"max by (pod) (goqueue_write_queue_depth{{{BROKERS}}})", "{{pod}}")]),
        Panel("Partitions", "Partition replicas held by each broker, and which broker leads the metadata Raft group.",
              [Target(f"max by (pod) (goqueue_partitions{{{BROKERS}}})", "{{pod}} partitions"),
               Target(f"max by (pod) (goqueue_raft_leader{{{BROKERS}}})", "{{pod}} metadata leader")]),
        Panel("Produce latency p99 by broker", "goqueue_message_latency_p99 (seconds, last minute).",
              [Target(f"max by (pod) (goqueue_message_latency_p99{{{BROKERS}}})", "{{pod}}")], unit="s",
              thresholds=[(None, "green"), (0.05, "orange"), (0.1, "red")]),
        Panel("gRPC requests by outcome", "gRPC calls per second by operation and outcome code (OK or an error code "
              "of docs/ERRORS.md).",
              [Target(f"sum by (op, code) (rate(goqueue_requests_total{{{BROKERS}}}[{RATE}]))", "{{op}} {{code}}")],
              unit="reqps"),
        Panel("ISR changes", "In-sync replica set shrinks and expands proposed by partition leaders, per 10 minutes.",
              [Target(f"sum by (pod, direction) (increase(goqueue_isr_changes_total{{{BROKERS}}}[10m]))",
                      "{{pod}} {{direction}}")]),
        Panel("Recovery truncations", "Bytes cut from torn segment tails at start-up (log.tail_truncated).",
              [Target(f"max by (pod) (goqueue_recovery_truncated_bytes_total{{{BROKERS}}})", "{{pod}}")],
              unit="bytes"),
    ]
    return _dashboard("goqueue-nodes", "GoQueue Nodes", "Per-broker resources, disk, and storage engine health.",
                      panels, _variables())


def operator() -> dict[str, Any]:
    """The operator's own work, after Strimzi's operator dashboard: reconciles, errors, and how far each long
    procedure (roll, storage resize, scaling with its drain or rebalance) has got. Progress gauges are sums over the
    clusters the operator serves; `kubectl get goqueue -A` names them."""
    scope = 'namespace="$namespace", pod=~"$pod"'
    reconciles = f"sum(rate(goqueue_operator_reconciles_total{{{scope}}}[{RATE}]))"
    panels = [
        Panel("Operator pods up", "Operator pods Prometheus scrapes (with replicaCount > 1 one is active, the others "
              "stand by).", [Target(f"sum(up{{{scope}}})")], kind="stat", width=4, height=4,
              thresholds=[(None, "red"), (1, "green")]),
        Panel("Reconciles", "Reconciles per second, every kind (clusters every clusterResyncSeconds, topics and groups "
              "every driftIntervalSeconds, plus one per change).", [Target(reconciles)], kind="stat", width=4,
              height=4, unit="ops"),
        Panel("Failed reconciles", "Share of reconciles that ended in an error over the last 10 minutes (kopf retries "
              "them: a steady share is a cluster that cannot converge).",
              [Target(f"sum(increase(goqueue_operator_reconciles_total{{{scope}, result=\"error\"}}[10m])) / "
                      f"clamp_min(sum(increase(goqueue_operator_reconciles_total{{{scope}}}[10m])), 1)")],
              kind="stat", width=4, height=4, unit="percentunit",
              thresholds=[(None, "green"), (0.01, "orange"), (0.1, "red")]),
        Panel("Procedures under way", "Clusters rolling, resizing storage or scaling now.",
              [Target(f"sum(goqueue_operator_procedures_in_progress{{{scope}}})")], kind="stat", width=4, height=4,
              thresholds=[(None, "green"), (1, "blue")]),
        Panel("Procedures blocked", "Clusters whose roll, resize or scale-down cannot proceed without help (status "
              "says why: RollBlocked, Resizing=Refused, ScaleDownBlocked). Alert: GoQueueRolloutBlocked.",
              [Target(f"sum(goqueue_operator_procedures_blocked{{{scope}}})")], kind="stat", width=4, height=4,
              thresholds=[(None, "green"), (1, "red")]),
        Panel("Brokers left to restart", "Brokers waiting for a restart in the rolls under way (status.rollout.pending "
              "of every cluster).", [Target(f"sum(goqueue_operator_roll_brokers_pending{{{scope}}})")], kind="stat",
              width=4, height=4, thresholds=[(None, "green"), (1, "blue")]),
        Panel("Reconcile rate by kind and result", "Reconciles per second by resource kind and result (ok, error).",
              [Target(f"sum by (kind, result) (rate(goqueue_operator_reconciles_total{{{scope}}}[{RATE}]))",
                      "{{kind}} {{result}}")], unit="ops"),
        Panel("Reconcile errors", "Failed reconciles per 10 minutes by kind and error (an exception class: "
              "TemporaryError is a retry, e.g. a broker not Ready yet).",
              [Target(f"sum by (kind, error) (increase(goqueue_operator_reconcile_errors_total{{{scope}}}[10m]))",
                      "{{kind}} {{error}}")], thresholds=[(None, "green"), (1, "orange")]),
        Panel("Reconcile duration", "p50 and p99 of one reconcile by kind (broker admin calls included: a slow "
              "broker shows here first).",
              [Target(f"histogram_quantile(0.99, sum by (kind, le) (rate("
                      f"goqueue_operator_reconcile_duration_seconds_bucket{{{scope}}}[{RATE}])))", "{{kind}} p99"),
               Target(f"histogram_quantile(0.5, sum by (kind, le) (rate("
                      f"goqueue_operator_reconcile_duration_seconds_bucket{{{scope}}}[{RATE}])))", "{{kind}} p50")],
              unit="s"),
        Panel("Procedures", "Clusters with each procedure under way, and blocked.",
              [Target(f"sum by (procedure) (goqueue_operator_procedures_in_progress{{{scope}}})",
                      "{{procedure}} under way"),
               Target(f"sum by (procedure) (goqueue_operator_procedures_blocked{{{scope}}})",
                      "{{procedure}} blocked")]),
        Panel("Roll progress", "Brokers left to restart; a roll is done when it reaches 0 (one broker at a time, each "
              "Ready and caught up before the next).",
              [Target(f"sum(goqueue_operator_roll_brokers_pending{{{scope}}})", "brokers left to restart")]),
        Panel("Roll steps", "Roller actions per 10 minutes: leadership moved off a broker, broker restarted, broker "
              "caught up, roll blocked.",
              [Target(f"sum by (step) (increase(goqueue_operator_rollout_steps_total{{{scope}}}[10m]))", "{{step}}")]),
        Panel("Resize and scale progress", "Claims not yet grown to spec.storage.size (filesystem included), and "
              "brokers still to add or remove.",
              [Target(f"sum(goqueue_operator_resize_claims_pending{{{scope}}})", "claims to grow"),
               Target(f"sum(goqueue_operator_scale_brokers_pending{{{scope}}})", "brokers to add or remove")]),
        Panel("Resize, scale and rebalance actions", "Executor actions per 10 minutes: claims patched, StatefulSet "
              "re-created, brokers scaled, departing brokers drained, rebalance after a scale-up.",
              [Target(f"sum by (procedure, step) (increase(goqueue_operator_procedure_steps_total{{{scope}}}[10m]))",
                      "{{procedure}} {{step}}")]),
        Panel("CPU", "CPU seconds per second of each operator process.",
              [Target(f"sum by (pod) (rate(process_cpu_seconds_total{{{scope}}}[{RATE}]))", "{{pod}}")]),
        Panel("Memory", "Resident memory of each operator process (compare with the chart's resources.limits).",
              [Target(f"max by (pod) (process_resident_memory_bytes{{{scope}}})", "{{pod}}")], unit="bytes"),
    ]
    return _dashboard("goqueue-operator", "GoQueue Operator", "The operator's reconciles, errors, and the progress of "
                      "rolls, storage resizes and scalings.", panels,
                      _variables(metric="goqueue_operator_procedures_in_progress", pod_label="Operator pod"))


DASHBOARDS = {"goqueue-overview.json": overview, "goqueue-topics.json": topics,
              "goqueue-consumers.json": consumers, "goqueue-nodes.json": nodes, "goqueue-operator.json": operator}


def render() -> dict[str, str]:
    """File name → JSON text, exactly as committed."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
