"""A follower's fetcher asking the leader where an epoch ends while its replica is dropped (a reassignment moved it
away: the log deleted) must let it go, not die on the deleted log. Seen in CI: the fetch task died with IndexError on
`log_end_offset` of a deleted log (tests/integration/test_reassignment.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from goqueue.config import Settings
from goqueue.replicas.fetcher import ReplicaFetcherManager
from goqueue.replicas.partition import Partition, Role
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, PartitionLog

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
