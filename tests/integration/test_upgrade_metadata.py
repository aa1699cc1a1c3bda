"""The upgrade path: a cluster written by an older GoQueue (tests/fixtures/upgrade, see its README) starts on this
code with everything intact — brokers, topics, partitions, replica assignments, leader epochs, settings, every
record, group offsets, leases and pause flags — and then takes new topics, records and a restart.

Both fixtures: stopped cleanly, and by SIGKILL (with every group paused). The brokers run on the fixture's fixed
addresses with its settings (`make_upgrade_fixture.broker_env`), as an upgraded StatefulSet would.
"""

from __future__ import annotations

import importlib.util
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from goqueue.replication import raft_codec
from goqueue.replication.commands import METADATA_VERSION

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BROKERS = range(3)
NEW_TOPIC = "after-upgrade"
# What this version needs on top of the fixture's settings: the fixture's clients are anonymous, and anonymous
# access is off by default in a cluster since users and ACLs exist (docs/SECURITY.md), so an upgraded cluster
# without users turns it on, as the chart and the test brokers do.
NEW_SETTINGS = {"GOQUEUE_SECURITY_ALLOWANONYMOUS": "true"}


def _load_fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_upgrade_fixture", REPO / "scripts" / "make_upgrade_fixture.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_fixture_script()


@dataclass
class Upgraded:
    root: Path
    manifest: dict[str, Any]
    old_states: list[Any]  # the Raft state the old code rebuilt from each broker's journal
    brokers: Any  # make_upgrade_fixture.Brokers, running this code


@pytest.fixture(params=["clean", "killed"])
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upgraded]:
    with tarfile.open(REPO / "tests" / "fixtures" / "upgrade" / f"{request.param}.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / str(request.param)
    manifest = json.loads((root / "manifest.json").read_text())
    old_states = [raft_codec.loads((root / f"metadata-{i}.pickle").read_bytes()) for i in BROKERS]
    brokers = script.Brokers(root, code=None, settings=NEW_SETTINGS)  # code=None: the goqueue this test imports
    with brokers.running():
        script.wait_healthy()
        yield Upgraded(root, manifest, old_states, brokers)
    for index in BROKERS:
        log = (root / f"broker-{index}.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]


def test_a_cluster_written_by_the_old_code_starts_on_this_code_with_everything_intact(upgraded: Upgraded) -> None:
    manifest = upgraded.manifest
    check_members(manifest)
    check_topics(manifest)
    check_partitions(upgraded.old_states)
    check_records(manifest["records"])
    check_groups(manifest["groups"])
    check_inflight(manifest["inflight"])
    for index in BROKERS:
        assert "storage_replaced" not in upgraded.brokers.log_tail(index), "a broker took its own volume for new"

    # This code writes on the upgraded cluster, and reads it all back after a restart.
    script.call("POST", "/v1/topics", json={"name": NEW_TOPIC, "partitions": 3, "replicationFactor": 3,
                                            "config": {"minInsyncReplicas": 2}})
    script.wait_healthy()
    script.produce(NEW_TOPIC, 0, 30)
    script.produce("orders", 240, 24)  # after the old records, at the offsets that follow theirs
    script.call("POST", "/v1/groups/ledger/offsets", json={"offsets": [{"topic": "orders", "partition": 0,
                                                                        "offset": 20}]})
    records = {topic: {str(p): script.read_partition(topic, p) for p in range(partitions)}
               for topic, partitions in (("orders", 6), (NEW_TOPIC, 3))}
    assert sum(len(r) for r in records[NEW_TOPIC].values()) == 30
    for partition, old in manifest["records"]["orders"].items():
        assert records["orders"][partition][:len(old)] == old
    groups = {name: script.call("GET", f"/v1/groups/{name}") for name in manifest["groups"]}

    for index in reversed(BROKERS):
        assert upgraded.brokers.stop(index) == 0, upgraded.brokers.log_tail(index)
    check_journals_keep(upgraded.root, upgraded.old_states)
    upgraded.brokers.start_all()
    script.wait_healthy()
    check_members(manifest)
    check_records(records)
    check_records({name: manifest["records"][name] for name in ("audit", "profiles", "events")})
    check_groups(groups)
    check_inflight(manifest["inflight"])


def check_members(manifest: dict[str, Any]) -> None:
    stable = ("brokerId", "host", "httpPort", "grpcPort", "raftPort", "zone")
    members = script.call("GET", "/v1/cluster/members")
    assert [{k: m[k] for k in stable} for m in members] == [{k: m[k] for k in stable} for m in manifest["members"]]


def check_topics(manifest: dict[str, Any]) -> None:
    for name, expected in manifest["topics"].items():
        topic = script.call("GET", f"/v1/topics/{name}")
        assert {k: topic[k] for k in ("name", "partitions", "replicationFactor", "config")} == {
            k: expected[k] for k in ("name", "partitions", "replicationFactor", "config")}, name
        assert [p["replicas"] for p in topic["partitionDetails"]] == expected["replicas"], name
    listed = {t["name"] for t in script.call("GET", "/v1/topics")}
    assert listed >= set(manifest["topics"]) - {"__consumer_state"}
    assert not listed & set(manifest["deleted"])


def check_partitions(old_states: list[Any]) -> None:
    """Replica lists and ISRs as the old metadata had them; leader epochs never behind it (this restart may have
    elected leaders, which moves epochs on, never back); every partition led by one of its replicas."""
    newest = {(name, index): max(s["topics"][name]["partition_state"][index]["leader_epoch"] for s in old_states)
              for name, topic in old_states[0]["topics"].items() for index in topic["partition_state"]}
    for broker in BROKERS:
        for partition in script.call("GET", "/v1/replication/status", via=broker)["partitions"]:
            key = (partition["topic"], partition["partition"])
            old = old_states[broker]["topics"][key[0]]["partition_state"][key[1]]
            assert partition["replicas"] == old["replicas"], key
            assert partition["leaderEpoch"] >= newest[key], key
            assert partition["leader"] in partition["replicas"], key
            assert sorted(partition["isr"]) == sorted(partition["replicas"]), key  # healthy: every copy in sync


def check_records(expected: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for topic, partitions in expected.items():
        for partition, records in partitions.items():
            assert script.read_partition(topic, int(partition)) == records, f"{topic}/{partition}"


def check_groups(expected: dict[str, dict[str, Any]]) -> None:
    for name, old in expected.items():
        group = script.call("GET", f"/v1/groups/{name}")
        for key in ("mode", "paused", "config", "topics"):
            assert group[key] == old[key], (name, key)
        # Paused (by its own flag or by pause-all) survives; members do not (they join again), so nor does Stable.
        assert (group["state"] == "Paused") == (old["state"] == "Paused"), name
        assert committed(group) == committed(old), name


def committed(group: dict[str, Any]) -> dict[tuple[str, int], int | None]:
    return {(o["topic"], o["partition"]): o["committed"] for o in group["offsets"]}


def check_inflight(expected: list[dict[str, Any]]) -> None:
    """Unacked messages stay unacked, acked ones acked. (A lease may have expired since the fixture was made:
    then it waits for redelivery, with the same delivery count.)"""
    def stable(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((m["group"], m["topic"], m["partition"], m["offset"], m["deliveryCount"]) for m in messages)

    assert stable(script.call("GET", "/v1/admin/inflight")["messages"]) == stable(expected)


def check_journals_keep(root: Path, old_states: list[Any]) -> None:
    """What this code journaled on the upgraded cluster replays (with this code) to the old brokers' registrations
    — addresses, zones, volume identities: none was replaced; each broker registered again only to add its internal
    port and metadata version, which the old code had none of — and the old topics' settings and replica lists, plus
    the new topic."""
    added = ("internal_port", "metadata_version")
    for broker in BROKERS:
        state = script.replay_journal(root / f"broker-{broker}" / "wal")
        old = old_states[broker]
        assert {b: entry.get("internal_port") for b, entry in state["brokers"].items()} == dict.fromkeys(BROKERS, 8081)
        assert {b: entry.get("metadata_version") for b, entry in state["brokers"].items()} == dict.fromkeys(
            BROKERS, METADATA_VERSION)
        assert {b: {k: v for k, v in entry.items() if k not in added}
                for b, entry in state["brokers"].items()} == old["brokers"], broker
        assert state["paused_all"] == old["paused_all"], broker
        for name, topic in old["topics"].items():
            now = state["topics"][name]
            assert {k: v for k, v in now.items() if k != "partition_state"} == {
                k: v for k, v in topic.items() if k != "partition_state"}, name
            assert {i: p["replicas"] for i, p in now["partition_state"].items()} == {
                i: p["replicas"] for i, p in topic["partition_state"].items()}, name
        assert NEW_TOPIC in state["topics"], broker
