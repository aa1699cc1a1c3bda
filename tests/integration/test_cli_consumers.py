"""goqueue-cli / goqueue-admin consumer commands against a real broker: output shapes (-o json lines, tables),
exit codes of server-side errors, and each option of reset-offset, consume, pause/resume and restore."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
from broker_process import BrokerProcess

from goqueue.client.http import GoQueueClient
from goqueue.models import ConsumeRequest, OffsetCommit, ProduceRecord, TopicCreate

pytestmark = pytest.mark.integration


def cli(broker: BrokerProcess, *args: str, stdin: str | None = None, cwd: Path | None = None,
        expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GOQUEUE_SERVER": broker.url}
    result = subprocess.run(list(args), env=env, input=stdin, capture_output=True, text=True, timeout=60,
                            cwd=cwd, check=False)
    assert result.returncode == expect, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    if expect:
        assert result.stderr.startswith("error: ")
        assert result.stderr.count("\n") == 1, result.stderr
    return result


@pytest.fixture(scope="module")
def topic(module_broker: BrokerProcess) -> str:
    with GoQueueClient(module_broker.url) as client:
        client.create_topic(TopicCreate(name="cli-orders", partitions=2))
        client.produce("cli-orders", [ProduceRecord(key=f"k{n}", value=f"order-{n}", headers={"h": "1"})
                                      for n in range(10)])
        client.produce("cli-orders", [ProduceRecord(value=base64.b64encode(b"\xff\xfe").decode(), partition=0)],
                       encoding="base64")
    return "cli-orders"


def test_consume_json_lines_then_ack_moves_the_group(module_broker: BrokerProcess, topic: str) -> None:
    peek = cli(module_broker, "goqueue-cli", "-o", "json", "consume", "--topic", topic, "--group", "cli-shared",
               "--from-beginning", "--timeout", "1")
    lines = [json.loads(line) for line in peek.stdout.splitlines()]
    assert len(lines) == 11
    assert set(lines[0]) >= {"topic", "partition", "offset", "key", "value", "headers", "timestamp"}
    binary = [line for line in lines if line.get("encoding") == "base64"]
    assert [base64.b64decode(line["value"]) for line in binary] == [b"\xff\xfe"]
    assert {line["value"] for line in lines if "encoding" not in line} == {f"order-{n}" for n in range(10)}
    # without --ack the leases were released: the same records come again, not counted as a delivery
    again = cli(module_broker, "goqueue-cli", "-o", "json", "consume", "--topic", topic, "--group", "cli-shared",
                "--max", "4", "--ack", "--timeout", "1")
    assert [json.loads(line)["deliveryCount"] for line in again.stdout.splitlines()] == [1, 1, 1, 1]
    with GoQueueClient(module_broker.url) as client:
        assert sum(o.lag or 0 for o in client.describe_group("cli-shared").offsets) == 7
    table = cli(module_broker, "goqueue-cli", "group", "describe", "cli-shared")
    assert "COMMITTED" in table.stdout
    assert "LAG" in table.stdout


def test_ordered_consume_commits_with_ack(module_broker: BrokerProcess, topic: str) -> None:
    first = cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-ordered", "--mode",
                "ordered", "--from-beginning", "--ack", "--timeout", "1")
    assert "11 records acknowledged" in first.stderr
    with GoQueueClient(module_broker.url) as client:
        info = client.describe_group("cli-ordered")
        assert info.mode.value == "ordered"
        assert [o.lag for o in info.offsets] == [0, 0]
        assert info.members == []  # the CLI left on exit
    second = cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-ordered", "--timeout",
                 "0.5")
    assert "0 records" in second.stderr


def test_reset_offset_options(module_broker: BrokerProcess, topic: str) -> None:
    group = "cli-reset"
    with GoQueueClient(module_broker.url) as client:
        client.commit(group, [OffsetCommit(topic=topic, partition=p, offset=2) for p in (0, 1)])

    def plan(*options: str) -> list[tuple[int, int]]:
        out = cli(module_broker, "goqueue-cli", "-o", "json", "group", "reset-offset", "--group", group, "--topic",
                  topic, *options)
        return [(e["partition"], e["target"]) for e in json.loads(out.stdout)["partitions"]]

    assert plan("--to-earliest", "--dry-run") == [(0, 0), (1, 0)]
    assert plan("--shift-by", "1", "--partition", "1") == [(1, 3)]
    assert plan("--to-offset", "1") == [(0, 1), (1, 1)]
    assert plan("--to-latest")[0][1] > 1
    assert plan("--to-datetime", "2000-01-01T00:00:00Z") == [(0, 0), (1, 0)]
    assert plan("--to-datetime", "2999-01-01T00:00:00+02:00") == plan("--to-latest", "--dry-run")
    human = cli(module_broker, "goqueue-cli", "group", "reset-offset", "--group", group, "--topic", topic,
                "--to-earliest", "--dry-run")
    assert human.stdout.startswith("dry run")


def test_server_errors_exit_non_zero_with_one_line(module_broker: BrokerProcess, topic: str) -> None:
    with GoQueueClient(module_broker.url) as client:  # a member until the client closes
        client.consume("cli-busy", ConsumeRequest(consumer_id="live", topic=topic))
        cli(module_broker, "goqueue-cli", "group", "reset-offset", "--group", "cli-busy", "--topic", topic,
            "--to-earliest", expect=4)
        cli(module_broker, "goqueue-cli", "group", "reset-offset", "--group", "cli-busy", "--topic", topic,
            "--to-earliest", "--force")
    cli(module_broker, "goqueue-cli", "group", "describe", "no-such-group", expect=3)
    cli(module_broker, "goqueue-cli", "group", "reset-offset", "--group", "g", "--topic", "no-such-topic",
        "--to-earliest", expect=3)
    cli(module_broker, "goqueue-cli", "group", "reset-offset", "--group", "g", "--topic", topic, "--to-earliest",
        "--partition", "9", expect=3)
    cli(module_broker, "goqueue-cli", "consume", "--topic", "no-such-topic", "--group", "g", expect=3)
    # An existing group keeps its own mode: a consume asking for another one is served in the group's mode. (With
    # --timeout 0 the CLI sends no request at all: each consume here waits for, and prints, one record.)
    first = cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-own-mode", "--mode",
                "ordered", "--from-beginning", "--max", "1", "--timeout", "30")
    again = cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-own-mode", "--mode",
                "shared", "--max", "1", "--timeout", "30")
    assert [len(first.stdout.splitlines()), len(again.stdout.splitlines())] == [1, 1], (first.stdout, again.stdout)
    described = cli(module_broker, "goqueue-cli", "-o", "json", "group", "describe", "cli-own-mode")
    assert json.loads(described.stdout)["mode"] == "ordered"
    cli(module_broker, "goqueue-admin", "inflight", "list", "--group", "no-such-group", expect=3)
    cli(module_broker, "goqueue-admin", "consumer", "pause", "--group", "no-such-group", expect=3)
    cli(module_broker, "goqueue-cli", "topic", "delete", "__consumer_state", "--yes", expect=2)


def test_pause_resume_and_inflight(module_broker: BrokerProcess, topic: str) -> None:
    cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-pause", "--max", "3",
        "--timeout", "0")  # creates the group; leases released
    with GoQueueClient(module_broker.url) as client:
        held = client.consume("cli-pause", ConsumeRequest(consumer_id="holder", topic=topic, max_records=2,
                                                          start_from="earliest"))
        assert len(held.records) == 2
    listing = cli(module_broker, "goqueue-admin", "-o", "json", "inflight", "list", "--group", "cli-pause")
    assert [m["state"] for m in json.loads(listing.stdout)["messages"]].count("leased") == 2
    table = cli(module_broker, "goqueue-admin", "inflight", "list", "--group", "cli-pause")
    assert "unacked messages" in table.stdout
    assert "paused" in cli(module_broker, "goqueue-admin", "consumer", "pause", "--group", "cli-pause").stdout
    paused = cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-pause", "--timeout",
                 "0.3")
    assert "is paused" in paused.stderr
    assert paused.returncode == 0
    cli(module_broker, "goqueue-admin", "consumer", "resume", "--group", "cli-pause")
    resumed = cli(module_broker, "goqueue-cli", "-o", "json", "consume", "--topic", topic, "--group", "cli-pause",
                  "--max", "1", "--timeout", "1")
    assert len(resumed.stdout.splitlines()) == 1


def test_backup_then_restore_into_another_broker(module_broker: BrokerProcess, topic: str, tmp_path: Path) -> None:
    cli(module_broker, "goqueue-cli", "consume", "--topic", topic, "--group", "cli-backup", "--from-beginning",
        "--max", "5", "--ack", "--timeout", "1")
    backup = cli(module_broker, "goqueue-admin", "backup", "metadata")
    (tmp_path / "backup.json").write_text(backup.stdout)
    other = BrokerProcess(tmp_path / "other").start()
    try:
        restored = cli(other, "goqueue-admin", "-o", "json", "restore", "metadata", "backup.json", cwd=tmp_path)
        report = json.loads(restored.stdout)
        assert topic in report["topicsCreated"]
        assert "cli-backup" in report["groupsRestored"]
        with GoQueueClient(other.url) as client:
            committed = sum(o.committed or 0 for o in client.describe_group("cli-backup").offsets)
            assert committed == 0  # the new broker's log is empty: offsets are clamped to what it holds
            assert client.describe_topic(topic).partitions == 2
        cli(other, "goqueue-admin", "restore", "metadata", "-", stdin=backup.stdout)  # idempotent, from stdin
    finally:
        assert other.stop() == 0


def test_a_new_group_read_from_the_beginning_once_skips_nothing_later(module_broker: BrokerProcess) -> None:
    """Issue 12, as a user met it: `consume --from-beginning --max 1` on a new group, then `consume` without the
    flag. The first read gave only the partition it touched a start, so the second began the other three at their
    end: 1,500 stored records were never delivered. Every partition now starts with the first read."""
    with GoQueueClient(module_broker.url) as client:
        client.create_topic(TopicCreate(name="cli-backlog", partitions=4))
        for partition in range(4):
            client.produce("cli-backlog", [ProduceRecord(value=f"{partition}-{n}") for n in range(500)],
                           partition=partition)
    first = cli(module_broker, "goqueue-cli", "-o", "json", "consume", "--topic", "cli-backlog", "--group",
                "cli-backlog-readers", "--from-beginning", "--max", "1", "--ack", "--timeout", "1")
    rest = cli(module_broker, "goqueue-cli", "-o", "json", "consume", "--topic", "cli-backlog", "--group",
               "cli-backlog-readers", "--ack", "--timeout", "1")
    values = [json.loads(line)["value"] for line in first.stdout.splitlines() + rest.stdout.splitlines()]
    assert sorted(values) == sorted(f"{p}-{n}" for p in range(4) for n in range(500))
    with GoQueueClient(module_broker.url) as client:
        offsets = client.describe_group("cli-backlog-readers").offsets
    assert [(o.committed, o.lag) for o in offsets] == [(500, 0)] * 4
