"""Journals written by an older version (tests/fixtures/upgrade) replay on this code to the metadata the old code
rebuilt from them, and the metadata types describe exactly what those journals hold."""

from __future__ import annotations

import importlib.util
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, get_args

import pytest

from goqueue.replication import raft_codec
from goqueue.replication.commands import Command
from goqueue.replication.state import BrokerEntry, MetadataState, PartitionState, TopicEntry

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "upgrade"
VARIANTS = ["clean", "killed"]
BROKERS = range(3)


def fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_upgrade_fixture", REPO / "scripts" / "make_upgrade_fixture.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=VARIANTS)
def unpacked(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    with tarfile.open(FIXTURES / f"{request.param}.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / str(request.param)


def old_state(root: Path, broker: int) -> Any:
    return raft_codec.loads((root / f"metadata-{broker}.pickle").read_bytes())


def test_each_journal_replays_to_the_metadata_the_old_code_rebuilt_from_it(unpacked: Path) -> None:
    replay_journal = fixture_script().replay_journal
    for broker in BROKERS:
        expected = old_state(unpacked, broker)
        assert replay_journal(unpacked / f"broker-{broker}" / "wal") == expected, f"broker {broker}"


def test_the_fixture_holds_what_it_claims(unpacked: Path) -> None:
    """Not vacuous: the journals hold topics of every kind, elections, and (killed) the pause-all flag."""
    state = old_state(unpacked, 0)
    assert sorted(state["topics"]) == ["__consumer_state", "audit", "events", "orders", "profiles"]
    assert state["topics"]["events"]["partitions"] == 4  # grown from 2
    assert state["topics"]["profiles"]["config"]["cleanupPolicy"] == "compact"
    assert any(p["leader_epoch"] > 0 for t in state["topics"].values() for p in t["partition_state"].values())
    assert sorted(state["brokers"]) == [0, 1, 2]
    assert state["paused_all"] is (unpacked.name == "killed")


def test_the_metadata_types_name_exactly_the_keys_old_journals_hold(unpacked: Path) -> None:
    """A TypedDict that declared a key old metadata lacks (or missed one it has) would let mypy vouch for lookups
    that fail, or miss ones that happen, on an upgraded cluster."""
    for broker in BROKERS:
        state = old_state(unpacked, broker)
        assert_keys(MetadataState, [state])
        assert_keys(BrokerEntry, state["brokers"].values())
        assert_keys(TopicEntry, state["topics"].values())
        assert_keys(PartitionState, partitions(state))
        assert all(isinstance(i, int) for t in state["topics"].values() for i in t["partition_state"])
        assert all(isinstance(i, int) for i in state["brokers"])


def partitions(state: Any) -> Iterator[Any]:
    for topic in state["topics"].values():
        yield from topic["partition_state"].values()


def assert_keys(typed: Any, entries: Any) -> None:
    required, optional = set(typed.__required_keys__), set(typed.__optional_keys__)
    for entry in entries:
        assert required <= set(entry) <= required | optional, (typed.__name__, sorted(entry))


def test_the_command_types_name_exactly_the_keys_old_journals_hold(unpacked: Path) -> None:
    """Every journaled command matches the TypedDict of its `op`: no key it lacks is declared required, none it
    holds is undeclared."""
    by_op = {get_args(typed.__annotations__["op"])[0]: typed for typed in get_args(Command)}
    journal_commands = fixture_script().journal_commands
    seen = set()
    for broker in BROKERS:
        for _index, command in journal_commands(unpacked / f"broker-{broker}" / "wal"):
            assert_keys(by_op[command["op"]], [command])
            seen.add(command["op"])
    if unpacked.name == "clean":
        return  # its log was compacted into raft.dump: the journal holds only what changed after the dump
    assert seen >= {"register_broker", "barrier", "create_topic", "delete_topic", "grow_partitions",
                    "set_topic_config", "elect_leader", "change_isr", "set_paused_all"}, "most kinds are journaled"
