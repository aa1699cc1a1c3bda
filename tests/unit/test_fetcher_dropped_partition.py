"""A follower's fetcher asking the leader where an epoch ends while its replica is dropped (a reassignment moved it
away: the log deleted) must let it go, not die on the deleted log. Seen in CI: the fetch task died with IndexError on
`log_end_offset` of a deleted log (tests/integration/test_reassignment.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from goqueue import http1
from goqueue.config import Settings
from goqueue.replicas.fetcher import ReplicaFetcherManager, _append_and_sync, fetch_answer_bytes
from goqueue.replicas.partition import Partition, Role
from goqueue.replication.peers import ReplicaFetchRequest, ReplicaFetchResponse
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, LogDeleted, PartitionLog

pytestmark = pytest.mark.unit


class SlowPeers:
    """The leader answers the epoch question only once the test has dropped the replica."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def epoch_end_offset(self, url: str, topic: str, index: int, epoch: int) -> tuple[int, int]:
        self.asked.set()
        await self.answer.wait()
        return epoch, 0


class Membership:
    def __init__(self, peers: SlowPeers) -> None:
        self.peers = peers


def test_a_replica_dropped_while_its_fetcher_asks_the_leader_is_let_go(tmp_path: Path) -> None:
    async def scenario() -> None:
        plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1 << 20))
        plog.append(batches.build_batch([(None, b"v", [])], 0), 0)
        plog.flush()
        partition = Partition("t", 0, plog, broker_id=1)
        partition.apply_metadata({"replicas": [0, 1], "leader": 0, "leader_epoch": 0, "isr": [0, 1], "version": 0})
        partition.epochs.assign(0, 0)
        peers = SlowPeers()
        settings = Settings.model_validate({"broker": {"id": 1}})
        fetchers = ReplicaFetcherManager(settings, Membership(peers), list)  # type: ignore[arg-type]
        asking = asyncio.create_task(fetchers._truncate_to_leader("http://leader", partition))
        await peers.asked.wait()
        partition.role = Role.OFFLINE  # what ReplicaManager._drop_partition does before deleting the files
        plog.delete_files()
        peers.answer.set()
        await asking  # raised IndexError (the deleted log has no segment) before the fix

    asyncio.run(scenario())


def follower_log(tmp_path: Path) -> tuple[Partition, PartitionLog]:
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1 << 20))
    partition = Partition("t", 0, plog, broker_id=1)
    partition.apply_metadata({"replicas": [0, 1], "leader": 0, "leader_epoch": 0, "isr": [0, 1], "version": 0})
    return partition, plog


def test_a_replica_dropped_while_the_worker_thread_appends_its_fetch_is_let_go(tmp_path: Path) -> None:
    """The role is checked on the event loop before the append runs in a worker thread; another worker thread may
    delete the files in between. The append then finds a deleted log: nothing to keep, not a dead fetch task."""
    partition, plog = follower_log(tmp_path)
    fetched = batches.build_batch([(None, b"v", [])], 0)
    partition.role = Role.OFFLINE
    plog.delete_files()
    with pytest.raises(LogDeleted):
        plog.append_replicated(fetched)
    with pytest.raises(LogDeleted):
        plog.flush()
    with pytest.raises(LogDeleted):
        plog.truncate_to(0)  # a follower's truncation racing the drop: IndexError before
    _append_and_sync([(partition, fetched, 1)])  # raised IndexError before


def test_a_write_failure_of_a_replica_still_followed_is_raised(tmp_path: Path) -> None:
    partition, plog = follower_log(tmp_path)
    plog.delete_files()  # its role still FOLLOWER: not a drop, so the failure must reach the fetcher
    with pytest.raises(LogDeleted):
        _append_and_sync([(partition, batches.build_batch([(None, b"v", [])], 0), 1)])


def test_a_fetch_allows_the_largest_answer_a_leader_may_send() -> None:
    """The lean wire refuses an answer past the bound a fetch gives it, and the leader sends at least one whole batch
    however large (up to `limits.maxRequestBytes`): a bound of only the fetch size would stall the follower for good
    on the first large batch. The largest answer: the budget used up by a batch as large as any request, then every
    other partition's entry with the longest topic name and the largest offsets."""
    settings = Settings.model_validate({"broker": {"id": 1}, "limits": {"maxRequestBytes": 2**20},
                                        "replication": {"fetchMaxBytes": 4096}})
    topic = "t" * 249
    request = ReplicaFetchRequest(1, 500, settings.replication.fetch_max_bytes,
                                  [(topic, index, 2**62, 2**31) for index in range(50)])
    largest = ReplicaFetchResponse([(topic, 0, None, 2**62, 2**62, b"b" * (4096 - 1 + 2**20))] + [
        (topic, index, "FENCED_LEADER_EPOCH", 2**62, 2**62, b"") for index in range(1, 50)])
    assert len(msgspec.msgpack.encode(largest)) <= fetch_answer_bytes(settings, request)


def test_a_batch_taken_under_a_larger_limit_than_this_brokers_still_fits_the_bound() -> None:
    """A leader may hold a batch it took before `limits.maxRequestBytes` was lowered (or under its own, larger
    setting): the follower's bound never drops below the lean wire's default, or that batch would stall the
    replica for good."""
    settings = Settings.model_validate({"broker": {"id": 1}, "limits": {"maxRequestBytes": 1024}})
    request = ReplicaFetchRequest(1, 500, settings.replication.fetch_max_bytes, [("t", 0, 0, 0)])
    assert fetch_answer_bytes(settings, request) >= request.max_bytes + http1.MAX_ANSWER_BYTES
