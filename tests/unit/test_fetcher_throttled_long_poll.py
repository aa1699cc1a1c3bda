"""A follower that copies an added replica under the reassignment throttle and follows an idle partition of the same
leader: while the throttle holds the copy back, its fetch for the idle partition long-polls only until the throttle
allows the copy again. It used to long-poll for the whole `fetchMaxWait`, so under steady load the copy fetched
twice a second, never reached the leader's high watermark, and the move never completed (CI saw it stall)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from goqueue.config import Settings
from goqueue.replicas.fetcher import ReplicaFetcherManager
from goqueue.replicas.partition import Partition
from goqueue.replicas.throttle import ThrottleBucket
from goqueue.replication.peers import ReplicaFetchRequest, ReplicaFetchResponse
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, PartitionLog

pytestmark = pytest.mark.unit

LEADER, FOLLOWER, EPOCH = 0, 2, 1
THROTTLE = 2**20           # bytes/s
COPIED = 100 * 1024        # what the first fetch brings the added replica: ~98 ms of throttle
FETCH_MAX_WAIT_MS = 500


def follower_of_leader(tmp_path: Path, topic: str) -> Partition:
    partition = Partition(topic, 0, PartitionLog.open(tmp_path / f"{topic}-0", LogConfig(segment_bytes=1 << 22)),
                          broker_id=FOLLOWER)
    partition.apply_metadata({"replicas": [LEADER, 1, FOLLOWER], "leader": LEADER, "leader_epoch": EPOCH,
                              "isr": [LEADER, 1], "version": 0})
    partition.needs_truncation = False  # nothing to align: both logs are empty
    return partition


@pytest.fixture
def partitions(tmp_path: Path) -> Iterator[dict[str, Partition]]:
    both = {"moving": follower_of_leader(tmp_path, "moving"), "idle": follower_of_leader(tmp_path, "idle")}
    yield both
    for partition in both.values():
        partition.log.close()


def fetches_made(partitions: dict[str, Partition]) -> list[ReplicaFetchRequest]:
    """Runs the follower's fetcher for `LEADER` over two fetches; the requests it sent."""
    states = {topic: {"replicas": [LEADER, 1, FOLLOWER], "leader": LEADER, "leader_epoch": EPOCH, "isr": [LEADER, 1],
                      "version": 1, "adding_replicas": [FOLLOWER] if topic == "moving" else []}
              for topic in partitions}
    settings = Settings.model_validate({"broker": {"id": FOLLOWER},
                                        "replication": {"fetchMaxWait": f"{FETCH_MAX_WAIT_MS}ms"}})
    sent: list[ReplicaFetchRequest] = []
    fetchers: ReplicaFetcherManager

    async def replica_fetch(url: str, request: ReplicaFetchRequest, max_answer_bytes: int) -> ReplicaFetchResponse:
        sent.append(request)
        if len(sent) == 2:
            fetchers._stopping = True
        answers = []
        for topic, index, _offset, _epoch in request.partitions:
            data = b""
            if topic == "moving" and len(sent) == 1:
                batch = batches.build_batch([(None, b"x" * COPIED, [])], 0)
                batches.stamp(batch, 0, EPOCH)
                data = bytes(batch)
            answers.append((topic, index, None, 0, 0, data))
        return ReplicaFetchResponse(partitions=answers)

    membership = SimpleNamespace(
        stopping=False, peers=SimpleNamespace(replica_fetch=replica_fetch),
        broker_url=lambda broker_id: f"http://broker-{broker_id}",
        view=SimpleNamespace(replication_throttle=THROTTLE, partition=lambda topic, index: states[topic]))
    fetchers = ReplicaFetcherManager(settings, membership, lambda: list(partitions.values()))  # type: ignore[arg-type]
    fetchers.throttle = ThrottleBucket(clock=lambda: 0.0)  # time stands still: the copy's debt is never repaid here
    asyncio.run(fetchers._fetch_from(LEADER))
    return sent


def test_while_the_throttle_holds_a_copy_back_the_other_fetch_waits_only_until_it_allows_it_again(
        partitions: dict[str, Partition]) -> None:
    first, second = fetches_made(partitions)
    assert sorted(p[0] for p in first.partitions) == ["idle", "moving"]
    assert first.max_wait_ms == FETCH_MAX_WAIT_MS  # nothing held back: the usual long-poll
    assert partitions["moving"].log.log_end_offset == 1
    assert [p[0] for p in second.partitions] == ["idle"]  # the copy is in debt to the throttle: left out ...
    owed_ms = COPIED * 1000 / THROTTLE  # ~98 ms, plus the batch's framing
    assert owed_ms <= second.max_wait_ms <= owed_ms + 2  # ... for as long as it owes, not 500 ms
