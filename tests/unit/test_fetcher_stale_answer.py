"""A fetch answer applies only to the replica that asked for it. While a follower's fetch is in flight, its partition
may move to another leader; the old leader's answer, applied then, could add records the new leader never had (the
old leader's unreplicated tail), after the new leader's fetcher truncated the log to the new leader's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from goqueue.config import Settings
from goqueue.replicas.fetcher import ReplicaFetcherManager
from goqueue.replicas.partition import Partition
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, PartitionLog

pytestmark = pytest.mark.unit

OLD_LEADER, NEW_LEADER = 0, 2


@pytest.fixture
def partition(tmp_path: Path) -> Iterator[Partition]:
    """A follower of OLD_LEADER at epoch 3, with an empty log."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1 << 20))
    follower = Partition("t", 0, plog, broker_id=1)
    follower.apply_metadata({"replicas": [0, 1, 2], "leader": OLD_LEADER, "leader_epoch": 3, "isr": [0, 1, 2],
                             "version": 0})
    yield follower
    plog.close()


def answer_of_old_leader(partition: Partition) -> list[tuple[str, int, str | None, int, int, bytes]]:
    batch = batches.build_batch([(None, b"unreplicated tail of the old leader", [])], 0)
    batches.stamp(batch, 0, 3)
    return [(partition.topic, partition.index, None, 0, 0, bytes(batch))]


def apply(partition: Partition, asked_epoch: int = 3, asked_offset: int = 0) -> None:
    fetchers = ReplicaFetcherManager(Settings.model_validate({"broker": {"id": 1}}), None, list)  # type: ignore[arg-type]
    asked = [(partition.topic, partition.index, asked_offset, asked_epoch)]
    asyncio.run(fetchers._apply_fetch(OLD_LEADER, asked, [partition], answer_of_old_leader(partition)))


def test_the_answer_of_the_leader_asked_is_appended(partition: Partition) -> None:
    apply(partition)
    assert partition.log.log_end_offset == 1


def test_an_answer_arriving_after_the_partition_moved_to_another_leader_is_dropped(partition: Partition) -> None:
    partition.apply_metadata({"replicas": [0, 1, 2], "leader": NEW_LEADER, "leader_epoch": 4, "isr": [1, 2],
                              "version": 1})
    apply(partition)
    assert partition.log.log_end_offset == 0


def test_an_answer_for_an_older_epoch_of_the_same_leader_is_dropped(partition: Partition) -> None:
    apply(partition, asked_epoch=2)
    assert partition.log.log_end_offset == 0


def test_an_answer_for_another_log_end_than_the_replicas_is_dropped(partition: Partition) -> None:
    """The log was truncated (or written) since the fetch left: the records would not start where it was asked."""
    apply(partition, asked_offset=5)
    assert partition.log.log_end_offset == 0
