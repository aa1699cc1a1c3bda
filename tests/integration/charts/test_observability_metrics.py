"""Every metric the alert rules and the Grafana dashboards query is one GoQueue really exports.

A real `goqueue-broker` is started and exercised (a topic produced to over HTTP and gRPC and read, a shared group
that consumes, acks, nacks into its dead-letter topic and reaches its inflight capacity, an ordered group that
commits), then its /metrics is scraped. Each name in the queries must be a series of that exposition (counter
`_total`, histogram `_bucket`/`_sum`/`_count` included), of the operator's exposition (its rollout gauge), or one of
the few metrics of Kubernetes itself the Nodes dashboard uses. `promtool check metrics` lints the exposition.

Why integration and not unit: the per-group and per-partition gauges exist only on a broker with live state, and the
brief's point is "what the broker really exports", which only a running broker can say.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from broker_process import BrokerProcess
from prometheus_client.parser import text_string_to_metric_families

from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.config import OffsetReset
from goqueue.errors import GoQueueError, InflightLimitReached
from goqueue.models import (
    CleanupPolicy,
    ConsumeRequest,
    GroupConfig,
    GroupMode,
    GroupSpec,
    OffsetCommit,
    ProduceRecord,
    TopicConfig,
    TopicCreate,
)
from goqueue.records import RecordIn
from goqueue_harness.waiting import wait_until
from goqueue_operator.metrics import OperatorMetrics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "deploy" / "observability" / "prometheus" / "goqueue-alerts.yaml"
DASHBOARDS = sorted((REPO / "deploy" / "observability" / "dashboards").glob("*.json"))
# Not GoQueue's: Prometheus's own scrape health, and the kubelet's (cAdvisor) per-container usage.
KUBERNETES_METRICS = {"up", "container_cpu_usage_seconds_total", "container_memory_working_set_bytes"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",),
            "unknown": ("",)}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords or label names)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\w+", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end():].lstrip().startswith("("):
            continue  # a function
        if match[0].lower() not in PROMQL_WORDS:
            names.add(match[0])
    return names


def queried_names() -> dict[str, set[str]]:
    """metric name → where it is queried."""
    where: dict[str, set[str]] = {}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                where.setdefault(name, set()).add(f"alert {rule['alert']}")
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        exprs = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                match = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"]["query"])
                assert match, variable["query"]
                exprs.append((f"variable {variable['name']}", match[1]))
        for title, expr in exprs:
            for name in metric_names(expr):
                where.setdefault(name, set()).add(f"{path.name}: {title}")
    return where


def series_names(exposition: str) -> set[str]:
    """Every series name an exposition can hold, from its families and their types."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def exercise(broker: BrokerProcess) -> None:
    """Touch every part of the broker that exports a metric."""
    with GoQueueClient(broker.url) as client:
        client.create_topic(TopicCreate(name="orders", partitions=2))
        client.create_topic(TopicCreate(name="profiles", partitions=1,
                                        config=TopicConfig(cleanup_policy=CleanupPolicy.COMPACT)))
        client.produce("orders", [ProduceRecord(key=str(i), value=f"order {i}") for i in range(50)])
        client.produce("profiles", [ProduceRecord(key="k", value=f"v{i}") for i in range(5)])
        client.fetch("orders", 0, 0)
        asyncio.run(_grpc_traffic(broker.grpc_target))
        # Shared group: one message acked, one nacked into the dead-letter topic (maxDeliveries 1), the rest held
        # until the group is at its inflight capacity and a consume is refused.
        client.declare_group("billing", GroupSpec(topics=["orders"], config=GroupConfig(
            max_deliveries=1, inflight_capacity=5, visibility_timeout_s=60, auto_offset_reset=OffsetReset.EARLIEST)))
        leased = client.consume("billing", ConsumeRequest(consumer_id="c1", topic="orders", max_records=5,
                                                          start_from=OffsetReset.EARLIEST)).records
        assert len(leased) == 5
        client.ack("billing", [leased[0].lease_id or ""])
        client.nack("billing", [leased[1].lease_id or ""], reason="poison")
        client.consume("billing", ConsumeRequest(consumer_id="c1", topic="orders", max_records=5))  # 3 held + 2
        with pytest.raises(InflightLimitReached):
            client.consume("billing", ConsumeRequest(consumer_id="c1", topic="orders", max_records=5))
        # Ordered group: a member joins (a rebalance), reads and commits.
        client.declare_group("audit", GroupSpec(mode=GroupMode.ORDERED, topics=["orders"],
                                                config=GroupConfig(auto_offset_reset=OffsetReset.EARLIEST)))
        member = client.join_group("audit", ["orders"])
        read = client.consume("audit", ConsumeRequest(member_id=member.member_id, generation=member.generation,
                                                      max_records=10, start_from=OffsetReset.EARLIEST))
        client.commit("audit", [OffsetCommit(topic=r.topic, partition=r.partition, offset=r.offset + 1)
                                for r in read.records[-1:]], member_id=member.member_id,
                      generation=member.generation)


async def _grpc_traffic(target: str) -> None:
    async with GrpcClient(target) as grpc_client:
        await grpc_client.produce("orders", [RecordIn(key=b"g", value=b"over grpc", headers=[])])
        await grpc_client.list_topics()


def scrape(broker: BrokerProcess) -> str:
    with GoQueueClient(broker.url) as client:
        return client.metrics_text()


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    broker = BrokerProcess(tmp_path_factory.mktemp("observability-broker"),
                           env={"GOQUEUE_RETENTION_CHECKINTERVAL": "1s", "GOQUEUE_STORAGE_SEGMENTBYTES": "4096"})
    broker.start()
    try:
        exercise(broker)
        # Retention and compaction run on their own schedule (1 s here): wait until they have reported once.
        wait_until(lambda: "goqueue_compaction_removed_records_total{" in scrape(broker), 30,
                   message="the maintenance thread's first report")
        return scrape(broker)
    except GoQueueError as exc:
        raise AssertionError(f"{exc}\n{broker.log_text()[-4000:]}") from exc
    finally:
        assert broker.stop() == 0, broker.log_text()[-4000:]
        assert "Traceback" not in broker.log_text()


def test_every_queried_metric_is_exported(exposition: str) -> None:
    exported = series_names(exposition) | series_names(OperatorMetrics().exposition().decode())
    queried = queried_names()
    assert len(queried) > 40, sorted(queried)  # the extraction found the queries
    unknown = {name: sorted(where) for name, where in queried.items()
               if name not in exported and name not in KUBERNETES_METRICS}
    assert unknown == {}, f"queried but not exported: {json.dumps(unknown, indent=2)}"


def test_the_alerts_metrics_have_live_series(exposition: str) -> None:
    """Beyond the names: the series the alerts select are present with the labels they aggregate by."""
    samples = {s.name: s for f in text_string_to_metric_families(exposition) for s in f.samples}
    for name in ("goqueue_broker_ready", "goqueue_disk_usage_percent", "goqueue_disk_free_bytes",
                 "goqueue_message_latency_p99", "goqueue_under_replicated_partitions", "goqueue_offline_partitions",
                 "goqueue_inflight_capacity", "goqueue_consumer_unacked_messages", "goqueue_group_paused"):
        assert name in samples, name
    lag = [s for f in text_string_to_metric_families(exposition) for s in f.samples if s.name == "goqueue_consumer_lag"]
    assert {s.labels["group"] for s in lag} >= {"billing"}
    assert {"group", "topic", "partition"} <= set(lag[0].labels)
    dead = samples["goqueue_dead_lettered_messages_total"]
    assert dead.labels == {"group": "billing", "topic": "orders"}
    assert dead.value == 1
    assert samples["goqueue_inflight_limit_reached_total"].value >= 1
    produced = sum(s.value for f in text_string_to_metric_families(exposition) for s in f.samples
                   if s.name == "goqueue_messages_total" and s.labels["topic"] == "orders")
    assert produced == 51


def test_promtool_check_metrics_accepts_the_exposition(exposition: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: apt-get install prometheus (Debian ships /usr/bin/promtool)"
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_name_extraction() -> None:
    assert metric_names('sum by (namespace) (rate(goqueue_messages_total{topic!~"__.*"}[15m])) == 0') == {
        "goqueue_messages_total"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(goqueue_x_bucket[5m])))") == {"goqueue_x_bucket"}
    assert metric_names('(max by (pod) (up{job="goqueue"}) == 0) or (goqueue_broker_ready offset 5m == 0)') == {
        "up", "goqueue_broker_ready"}
    assert metric_names("a / on (group) group_left (x) b unless c") == {"a", "b", "c"}
