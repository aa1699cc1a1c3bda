"""deploy/testing/load/goqueue_load.py, the users' load generator, run as users run it against real brokers: one
broker, and a three-broker cluster through two of its URLs. It must produce at the asked rate, have every
acknowledged record consumed, report percentiles, clean up its group, and fail (exit 1) when records are not
consumed, so a chaos run can trust its "no loss"."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_process import BrokerProcess
from cluster_process import LocalCluster

from goqueue.client.http import GoQueueClient
from goqueue.models import GroupSpec, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration

TOOL = Path(__file__).resolve().parents[2] / "deploy" / "testing" / "load" / "goqueue_load.py"
PERCENTILE_KEYS = ["p50", "p90", "p95", "p99", "p999", "max"]


def load(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout_s,
                          check=False)


def load_json(*args: str) -> dict[str, Any]:
    result = load(*args, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def assert_percentiles(latency: dict[str, float]) -> None:
    values = [latency[k] for k in PERCENTILE_KEYS]
    assert values == sorted(values), latency
    assert values[0] > 0
    assert latency["count"] >= 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path_factory.mktemp("load-cluster")).start()
    try:
        yield running
    finally:
        assert running.stop() == [0, 0, 0]


def test_shared_mode_against_one_broker(broker: BrokerProcess) -> None:
    report = load_json("--server", broker.url, "--topic", "load", "--partitions", "4", "--replication-factor", "1",
                       "--rate", "400", "--duration", "2", "--record-size", "64", "--batch", "20",
                       "--producers", "2", "--consumers", "2", "--acks", "all")
    produce, consume = report["produce"], report["consume"]
    # 2 producers x 200 records/s for 2 s, in batches of 20 sent on schedule: 20 batches each at most.
    assert 0 < produce["records"] <= 800
    assert produce["records"] == produce["requests"] * 20
    assert produce["bytes"] == produce["records"] * 64
    assert produce["failed_requests"] == 0
    assert produce["records_per_s"] <= 400 * 1.05  # open loop: never faster than asked
    assert_percentiles(produce["latency_s"])
    assert report["verified"] is True
    assert report["missing_acknowledged_records"] == 0
    assert (report["duplicated_records"], report["out_of_order_records"]) == (0, 0)
    assert consume["records"] >= produce["records"]
    assert_percentiles(consume["end_to_end_latency_s"])
    assert report["errors"] == {}
    with GoQueueClient(broker.url) as client:
        assert client.describe_topic("load").partitions == 4
        assert sum(p.high_watermark for p in client.describe_topic("load").partition_details) == produce["records"]
        assert report["config"]["group"] not in {g.name for g in client.list_groups()}  # cleaned up


def test_ordered_mode_against_a_cluster_through_two_brokers(cluster: LocalCluster) -> None:
    report = load_json("--server", cluster.url(0), "--server", cluster.url(2), "--topic", "replicated-load",
                       "--partitions", "6", "--replication-factor", "3", "--rate", "0", "--duration", "2",
                       "--record-size", "200", "--batch", "50", "--producers", "2", "--consumers", "3",
                       "--mode", "ordered", "--acks", "all")
    assert report["produce"]["records"] > 0
    assert report["missing_acknowledged_records"] == 0
    assert report["drained"] is True
    with GoQueueClient(cluster.url(1)) as client:
        topic = client.describe_topic("replicated-load")
    assert topic.replication_factor == 3
    assert sum(p.high_watermark for p in topic.partition_details) == report["produce"]["records"]


def test_the_human_report(broker: BrokerProcess) -> None:
    result = load("--server", broker.url, "--replication-factor", "1", "--rate", "200", "--duration", "1",
                  "--batch", "10", "--producers", "1", "--consumers", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("produce  200 records")
    assert "end-to-end latency" in result.stdout
    assert lines[-2] == "loss     none: every acknowledged record was consumed"
    assert lines[-1] == "once     yes: no record written twice, none out of order"


def test_records_not_consumed_fail_the_run(broker: BrokerProcess) -> None:
    """A paused group consumes nothing: the report counts every acknowledged record as missing, exit 1."""
    with GoQueueClient(broker.url) as client:
        client.declare_group("paused-readers", GroupSpec(paused=True))
    result = load("--server", broker.url, "--replication-factor", "1", "--rate", "100", "--duration", "1",
                  "--batch", "10", "--producers", "1", "--consumers", "1", "--group", "paused-readers",
                  "--drain-timeout", "2", "--keep-group", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["produce"]["records"] == 100
    assert report["missing_acknowledged_records"] == 100
    assert report["drained"] is False


def test_the_group_starts_at_the_end_before_any_record_is_produced(broker: BrokerProcess) -> None:
    """The group's start is pinned at set-up (declaring it with its topic places its cursors), not at its first
    read: ordered members read only after their joins settle, and a start taken then would skip what was produced
    meanwhile. A paused group never reads, so its offsets show where set-up put it: after the records there."""
    with GoQueueClient(broker.url) as client:
        client.create_topic(TopicCreate(name="pinned", partitions=2, replication_factor=1))
        client.produce("pinned", [ProduceRecord(value=b"old", partition=p) for p in (0, 0, 0, 1, 1)])
        client.declare_group("pinned-readers", GroupSpec(paused=True))
    result = load("--server", broker.url, "--topic", "pinned", "--rate", "20", "--duration", "1", "--batch", "10",
                  "--producers", "1", "--consumers", "1", "--group", "pinned-readers", "--drain-timeout", "1",
                  "--keep-group", "--json")
    assert result.returncode == 1, result.stdout + result.stderr  # nothing consumed: the group is paused
    produced = json.loads(result.stdout)["produce"]["records"]
    assert produced == 20
    with GoQueueClient(broker.url) as client:
        offsets = {o.partition: o for o in client.describe_group("pinned-readers").offsets}
    assert {p: o.committed for p, o in offsets.items()} == {0: 3, 1: 2}
    assert sum(o.lag or 0 for o in offsets.values()) == produced


def test_an_unreachable_cluster_and_bad_arguments_exit_2() -> None:
    unreachable = load("--server", "http://127.0.0.1:9", "--duration", "1", "--setup-timeout", "1")
    assert unreachable.returncode == 2
    assert "UNAVAILABLE" in unreachable.stderr
    bad = load("--server", "http://127.0.0.1:9", "--batch", "0")
    assert bad.returncode == 2
    assert "--batch must be at least 1" in bad.stderr
