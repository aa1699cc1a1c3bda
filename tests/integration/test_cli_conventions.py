"""The CLIs as people type them (issue 16, item 3), against a real broker: global flags before or after the
command, names as arguments with the old flags still accepted, and -o yaml beside -o json on every command that
prints data."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from broker_process import BrokerProcess

from goqueue import __version__
from goqueue.client.http import GoQueueClient
from goqueue.errors import GroupNotFound, TopicNotFound
from goqueue.models import ConsumeRequest, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens


def run(broker: BrokerProcess | None, *args: str, expect: int = 0, stdin: str | None = None,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **(env or {})}
    if broker is not None:
        environment["GOQUEUE_SERVER"] = broker.url
    result = subprocess.run(list(args), env=environment, input=stdin, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    if expect:
        assert result.stderr.startswith("error: ")
        assert result.stderr.count("\n") == 1, result.stderr
    return result


@pytest.fixture(scope="module")
def seeded(module_broker: BrokerProcess) -> BrokerProcess:
    """A topic with records, a group holding two unacked messages, and an idle group (all acked, no member)."""
    with GoQueueClient(module_broker.url) as client:
        client.create_topic(TopicCreate(name="conv-orders", partitions=2))
        client.produce("conv-orders", [ProduceRecord(key=f"k{n}", value=f"v{n}") for n in range(6)])
        leased = client.consume("conv-group", ConsumeRequest(consumer_id="seed", topic="conv-orders", max_records=3,
                                                             start_from="earliest"))
        client.ack("conv-group", [r.lease_id or "" for r in leased.records[:1]])
        client.leave_group("conv-group", "seed")
        done = client.consume("conv-idle", ConsumeRequest(consumer_id="idle", topic="conv-orders", max_records=3,
                                                          start_from="earliest"))
        client.ack("conv-idle", [r.lease_id or "" for r in done.records])
        client.leave_group("conv-idle", "idle")
    return module_broker


# -- global flags anywhere ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["-o", "json", "topic", "list"], ["topic", "-o", "json", "list"], ["topic", "list", "-o", "json"],
    ["topic", "list", "--output", "json"], ["topic", "list", "--output=json"]])
def test_output_flag_before_or_after_the_command(seeded: BrokerProcess, args: list[str]) -> None:
    topics = json.loads(run(seeded, "goqueue-cli", *args).stdout)
    assert "conv-orders" in {t["name"] for t in topics}


def test_server_flag_after_the_command_wins_over_the_environment(seeded: BrokerProcess) -> None:
    env = {"GOQUEUE_SERVER": UNREACHABLE}
    failed = run(None, "goqueue-cli", "topic", "list", env=env, expect=6)
    assert "127.0.0.1:9" in failed.stderr
    listed = run(None, "goqueue-cli", "topic", "list", "--server", seeded.url, "-o", "json", env=env)
    assert "conv-orders" in {t["name"] for t in json.loads(listed.stdout)}
    status = run(None, "goqueue-admin", "cluster", "status", "-s", seeded.url, "-o", "json", env=env)
    assert json.loads(status.stdout)["healthy"] is True


def test_the_last_output_flag_wins(seeded: BrokerProcess) -> None:
    result = run(seeded, "goqueue-cli", "-o", "table", "group", "list", "-o", "json")
    assert "conv-group" in {g["name"] for g in json.loads(result.stdout)}


def test_request_timeout_flag_after_the_command(seeded: BrokerProcess) -> None:
    result = run(seeded, "goqueue-admin", "health", "--request-timeout", "5", "-o", "json")
    assert json.loads(result.stdout)["status"] == "healthy"
    run(seeded, "goqueue-admin", "health", "--request-timeout", "0", expect=2)


def test_a_value_that_looks_like_a_flag_stays_a_value(seeded: BrokerProcess) -> None:
    run(seeded, "goqueue-cli", "produce", "conv-flags", "--value", "-o", expect=3)  # no such topic: not a parse
    with GoQueueClient(seeded.url) as client:
        client.create_topic(TopicCreate(name="conv-flags"))
        run(seeded, "goqueue-cli", "produce", "conv-flags", "--value", "-o")
        assert [r.value for r in client.fetch("conv-flags", 0, 0).records] == ["-o"]


# -- names as arguments, old flags kept --------------------------------------------------------------------------

def _exists(broker: BrokerProcess, topic: str) -> bool:
    with GoQueueClient(broker.url) as client:
        try:
            client.describe_topic(topic)
        except TopicNotFound:
            return False
        return True


@pytest.mark.parametrize("spelling", [["conv-pos"], ["--name", "conv-pos"], ["conv-pos", "--name", "conv-pos"]])
def test_topic_commands_take_the_name_as_argument_or_flag(seeded: BrokerProcess, spelling: list[str]) -> None:
    created = run(seeded, "goqueue-cli", "topic", "create", *spelling, "--partitions", "2")
    assert created.stdout == "topic conv-pos created with 2 partitions, replication factor 1\n"
    described = json.loads(run(seeded, "goqueue-cli", "topic", "describe", *spelling, "-o", "json").stdout)
    assert (described["name"], described["partitions"]) == ("conv-pos", 2)
    run(seeded, "goqueue-cli", "topic", "alter", *spelling, "--partitions", "3")
    assert json.loads(run(seeded, "goqueue-cli", "topic", "describe", "conv-pos", "-o", "json").stdout)[
        "partitions"] == 3
    run(seeded, "goqueue-cli", "topic", "delete", *spelling, "--yes")
    assert not _exists(seeded, "conv-pos")


def test_two_different_names_or_none_are_refused(seeded: BrokerProcess) -> None:
    both = run(seeded, "goqueue-cli", "topic", "create", "conv-a", "--name", "conv-b", expect=2)
    assert "two topic names given: 'conv-a' and --name 'conv-b'" in both.stderr
    assert not _exists(seeded, "conv-a")
    assert not _exists(seeded, "conv-b")
    neither = run(seeded, "goqueue-cli", "group", "describe", expect=2)
    assert "missing group name" in neither.stderr


@pytest.mark.parametrize("spelling", [["conv-orders"], ["--topic", "conv-orders"], ["-t", "conv-orders"]])
def test_produce_and_consume_take_the_topic_as_argument_or_flag(seeded: BrokerProcess,
                                                                spelling: list[str]) -> None:
    produced = json.loads(run(seeded, "goqueue-cli", "produce", *spelling, "--key", "k0", "--value", "x",
                              "-o", "json").stdout)
    assert len(produced) == 1
    consumed = run(seeded, "goqueue-cli", "consume", *spelling, "--group", f"conv-read-{len(spelling)}-"
                   f"{spelling[0]}", "--from-beginning", "--max", "1", "--timeout", "5", "-o", "json")
    assert json.loads(consumed.stdout)["topic"] == "conv-orders"


def test_group_commands_take_the_name_as_argument_or_flag(seeded: BrokerProcess) -> None:
    for spelling in (["conv-group"], ["--group", "conv-group"], ["-g", "conv-group"]):
        info = json.loads(run(seeded, "goqueue-cli", "group", "describe", *spelling, "-o", "json").stdout)
        assert info["name"] == "conv-group"
        plan = json.loads(run(seeded, "goqueue-cli", "group", "reset-offset", *spelling, "--topic", "conv-orders",
                              "--to-earliest", "--dry-run", "-o", "json").stdout)
        assert plan["dryRun"] is True
        inflight = json.loads(run(seeded, "goqueue-admin", "inflight", "list", *spelling, "-o", "json").stdout)
        assert {m["group"] for m in inflight["messages"]} == {"conv-group"}
        paused = run(seeded, "goqueue-admin", "consumer", "pause", *spelling)
        assert paused.stdout == "group conv-group paused\n"
        assert json.loads(run(seeded, "goqueue-cli", "group", "describe", "conv-group", "-o", "json").stdout)[
            "paused"] is True
        run(seeded, "goqueue-admin", "consumer", "resume", *spelling)
        assert json.loads(run(seeded, "goqueue-cli", "group", "describe", "conv-group", "-o", "json").stdout)[
            "paused"] is False


# -- -o yaml -----------------------------------------------------------------------------------------------------

STABLE = [  # commands whose answer does not change between two calls on an idle broker
    ("goqueue-cli", "topic", "list"), ("goqueue-cli", "topic", "describe", "conv-orders"),
    ("goqueue-cli", "group", "list"), ("goqueue-cli", "group", "describe", "conv-idle"),
    ("goqueue-cli", "group", "reset-offset", "conv-idle", "--topic", "conv-orders", "--to-latest", "--dry-run"),
    ("goqueue-admin", "inflight", "list", "conv-idle"), ("goqueue-admin", "cluster", "status"),
    ("goqueue-admin", "cluster", "members"), ("goqueue-admin", "cluster", "leader"),
    ("goqueue-admin", "replication", "status")]


@pytest.mark.parametrize("command", STABLE, ids=[" ".join(c) for c in STABLE])
def test_yaml_is_the_json_answer(seeded: BrokerProcess, command: tuple[str, ...]) -> None:
    as_json = json.loads(run(seeded, *command, "-o", "json").stdout)
    text = run(seeded, *command, "-o", "yaml").stdout
    assert not text.lstrip().startswith(("{", "[")), text  # block YAML, not JSON (which YAML would also parse)
    as_yaml = yaml.safe_load(text)
    assert as_yaml == as_json
    assert as_yaml  # not an empty answer that would equal anything


def test_yaml_for_changing_answers_has_the_json_fields(seeded: BrokerProcess) -> None:
    for command in (("goqueue-admin", "health"), ("goqueue-admin", "storage", "stats")):
        as_json: dict[str, Any] = json.loads(run(seeded, *command, "-o", "json").stdout)
        as_yaml: dict[str, Any] = yaml.safe_load(run(seeded, *command, "-o", "yaml").stdout)
        assert set(as_yaml) == set(as_json)


def test_consume_yaml_is_one_document_per_record(seeded: BrokerProcess) -> None:
    result = run(seeded, "goqueue-cli", "consume", "conv-orders", "-g", "conv-yaml", "--from-beginning", "--max",
                 "3", "-o", "yaml")
    documents = list(yaml.safe_load_all(result.stdout))
    assert len(documents) == 3
    assert all(d["topic"] == "conv-orders" and d["value"].startswith("v") for d in documents)
    assert result.stderr == ""  # the "3 records" summary is for people, not for -o yaml


def test_a_yaml_backup_restores(seeded: BrokerProcess, tmp_path: Any) -> None:
    backup = tmp_path / "backup.yaml"
    backup.write_text(run(seeded, "goqueue-admin", "backup", "metadata", "-o", "yaml").stdout)
    as_json = json.loads(run(seeded, "goqueue-admin", "backup", "metadata").stdout)  # JSON without -o, as before
    as_yaml = yaml.safe_load(backup.read_text())
    assert {k: v for k, v in as_yaml.items() if k != "createdAtMs"} == \
        {k: v for k, v in as_json.items() if k != "createdAtMs"}
    with GoQueueClient(seeded.url) as client:
        client.delete_group("conv-group", force=True)
    report = json.loads(run(seeded, "goqueue-admin", "restore", "metadata", str(backup), "-o", "json").stdout)
    assert "conv-group" in report["groupsRestored"]


# -- version -----------------------------------------------------------------------------------------------------

def test_version_of_the_cli_and_of_the_broker(seeded: BrokerProcess) -> None:
    assert run(None, "goqueue-cli", "--version").stdout == f"goqueue-cli {__version__}\n"
    assert run(None, "goqueue-admin", "--version").stdout == f"goqueue-admin {__version__}\n"
    both = json.loads(run(seeded, "goqueue-admin", "version", "-o", "json").stdout)
    assert both == {"clientVersion": __version__, "serverVersion": __version__, "brokerId": 0}
    assert run(seeded, "goqueue-cli", "version").stdout == (f"Client version: {__version__}\n"
                                                            f"Server version: {__version__} (broker 0)\n")
    unreachable = run(None, "goqueue-cli", "version", "--server", UNREACHABLE, expect=6)
    assert unreachable.stdout == f"Client version: {__version__}\n"
    with GoQueueClient(seeded.url) as client:
        assert client.request("GET", "/v1/version").json() == {"version": __version__, "brokerId": 0}
        build_info = [line for line in client.metrics_text().splitlines() if line.startswith("goqueue_build_info")]
    assert build_info == [f'goqueue_build_info{{version="{__version__}"}} 1.0']


# -- group delete ------------------------------------------------------------------------------------------------

def test_group_delete_is_refused_while_members_are_live_unless_forced(seeded: BrokerProcess) -> None:
    with GoQueueClient(seeded.url) as client:
        client.consume("conv-doomed", ConsumeRequest(consumer_id="live", topic="conv-orders", max_records=1,
                                                     start_from="earliest"))
        refused = run(seeded, "goqueue-cli", "group", "delete", "conv-doomed", expect=4)
        assert refused.stderr == ("error: group 'conv-doomed' has 1 live members; stop them first or force "
                                  "(--force)\n")
        assert client.describe_group("conv-doomed").name == "conv-doomed"
        deleted = run(seeded, "goqueue-cli", "group", "delete", "conv-doomed", "--force")
        assert deleted.stdout == "group conv-doomed deleted\n"
        with pytest.raises(GroupNotFound):
            client.describe_group("conv-doomed")
        client.consume("conv-empty", ConsumeRequest(consumer_id="gone", topic="conv-orders", max_records=1))
        client.leave_group("conv-empty", "gone")
    assert json.loads(run(seeded, "goqueue-cli", "group", "delete", "--group", "conv-empty", "-o", "json").stdout) \
        == {"deleted": "conv-empty"}
    missing = run(seeded, "goqueue-cli", "group", "delete", "conv-empty", expect=3)
    assert "conv-empty" in missing.stderr


# -- cluster rebalance -------------------------------------------------------------------------------------------

def test_cluster_rebalance_on_a_balanced_cluster_moves_nothing(seeded: BrokerProcess) -> None:
    assert run(seeded, "goqueue-admin", "cluster", "rebalance").stdout == \
        "replicas already spread over all brokers: nothing moved\n"
    answer = json.loads(run(seeded, "goqueue-admin", "cluster", "rebalance", "--wait", "-o", "json").stdout)
    assert answer == {"moved": 0, "reasons": []}


# -- setting keys ------------------------------------------------------------------------------------------------

def test_settings_in_any_spelling_reach_the_broker_under_one_name(seeded: BrokerProcess) -> None:
    run(seeded, "goqueue-cli", "topic", "create", "conv-keys", "--config", "retention.maxAge=72h",
        "--config", "cleanup.policy=compact")
    with GoQueueClient(seeded.url) as client:
        created = client.describe_topic("conv-keys").config
        assert (created.retention_max_age_s, created.cleanup_policy.value) == (72 * 3600, "compact")
        run(seeded, "goqueue-cli", "topic", "alter", "conv-keys", "--config", "retention.ms=86400000",
            "--config", "min-insync-replicas=1")
        altered = client.describe_topic("conv-keys").config
        assert (altered.retention_max_age_s, altered.min_insync_replicas) == (86400, 1)
        run(seeded, "goqueue-cli", "topic", "alter", "conv-keys", "--config", "retentionMaxAge=24h")  # the runbook's
        assert client.describe_topic("conv-keys").config.retention_max_age_s == 86400
    shown = yaml.safe_load(run(seeded, "goqueue-cli", "topic", "describe", "conv-keys", "-o", "yaml").stdout)
    assert "retentionMaxAge" in shown["config"]
