"""The leader's ISR rules: who stays in sync, who may come back, and that old progress never counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from goqueue.replicas.partition import Partition, Role
from goqueue.replication.controller import controlled_shutdown_plan
from goqueue.replication.isr import FollowerProgress, high_watermark, next_isr, record_fetch
from goqueue.storage.log import LogConfig, PartitionLog

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

LAG_MAX_S = 10.0


def _state(isr: list[int], version: int, leader: int = 0, epoch: int = 0) -> dict[str, Any]:
    return {"leader": leader, "leader_epoch": epoch, "replicas": [0, 1, 2], "isr": isr, "version": version}


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[Partition]:
    """Broker 0 leading t/0 since t=100 s, replicas and ISR [0, 1, 2]."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    partition = Partition("t", 0, plog, broker_id=0)
    partition.apply_metadata(_state([0, 1, 2], 1), now_s=100.0)
    assert partition.role is Role.LEADER
    yield partition
    plog.close()


def test_a_follower_that_left_the_isr_rejoins_only_by_a_fetch_made_after_it_left(leader: Partition) -> None:
    """The CI failure: broker 1 restarted with a quarantined (empty) copy and left the ISR; the leader still held
    its progress from before the restart (offset 20 = the high watermark), re-admitted it on that, then handed it
    leadership with an empty log."""
    partition = leader
    for broker in (1, 2):
        record_fetch(partition.followers[broker], 20, 20, now_s=101.0)
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 102.0, LAG_MAX_S) is None

    partition.apply_metadata(_state([0, 2], 2), now_s=103.0)  # broker 1 left (leave_isr)

    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 104.0, LAG_MAX_S) is None, \
        "progress from before it left must not bring it back"
    record_fetch(partition.followers[1], 0, 20, now_s=105.0)  # it fetches again, from its empty log
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 105.0, LAG_MAX_S) is None
    record_fetch(partition.followers[1], 20, 20, now_s=106.0)  # it has everything again
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 106.0, LAG_MAX_S) == [0, 1, 2]


def test_an_in_sync_follower_fetching_below_the_high_watermark_leaves_at_once() -> None:
    progress = {1: FollowerProgress(), 2: FollowerProgress()}
    for broker in (1, 2):
        record_fetch(progress[broker], 20, 20, now_s=100.0)
    record_fetch(progress[1], 3, 20, now_s=101.0)  # restarted with a damaged volume, still within the lag window

    assert next_isr(0, [0, 1, 2], [0, 1, 2], progress, 20, 101.0, LAG_MAX_S) == [0, 2]


def test_a_new_leaders_followers_stay_in_sync_until_they_fetch_or_lag(leader: Partition) -> None:
    partition = leader  # placeholder progress at offset 0: no fetch seen yet, not a lost copy
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 105.0, LAG_MAX_S) is None
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 111.0, LAG_MAX_S) == [0]


def test_controlled_shutdown_hands_leadership_to_the_furthest_in_sync_follower() -> None:
    state: dict[str, Any] = {"topics": {"t": {"partition_state": {
        0: {"leader": 0, "leader_epoch": 3, "replicas": [0, 1, 2], "isr": [0, 1, 2], "version": 7}}}}}

    [command] = controlled_shutdown_plan(state, 0, {0, 1, 2}, {("t", 0): {1: 12, 2: 20}})
    assert (command["leader"], command["isr"], command["expected_epoch"]) == (2, [1, 2], 3)
    [unknown] = controlled_shutdown_plan(state, 0, {0, 1, 2})  # nothing seen: the ISR's order decides
    assert unknown["leader"] == 1
    assert controlled_shutdown_plan(state, 0, {0}) == [], "no live in-sync follower: nowhere to go"


def _progress(log_end: int, fetch_s: float, caught_up_s: float) -> FollowerProgress:
    return FollowerProgress(log_end_offset=log_end, last_fetch_s=fetch_s, last_caught_up_s=caught_up_s, fetched=True)


def test_a_follower_stays_in_sync_for_exactly_the_lag_limit_and_leaves_past_it() -> None:
    progress = {1: _progress(20, fetch_s=100.0, caught_up_s=100.0), 2: _progress(20, 100.0, 100.0)}
    at_limit = next_isr(0, [0, 1, 2], [0, 1, 2], progress, hwm=20, now_s=100.0 + LAG_MAX_S, lag_max_s=LAG_MAX_S)
    assert at_limit is None
    past = next_isr(0, [0, 1, 2], [0, 1, 2], progress, hwm=20, now_s=100.5 + LAG_MAX_S, lag_max_s=LAG_MAX_S)
    assert past == [0]


def test_a_caught_up_follower_rejoins_by_a_fetch_up_to_the_lag_limit_old() -> None:
    progress = {1: _progress(20, fetch_s=100.0, caught_up_s=0.0)}
    assert next_isr(0, [0], [0, 1], progress, hwm=20, now_s=100.0 + LAG_MAX_S, lag_max_s=LAG_MAX_S) == [0, 1]
    assert next_isr(0, [0], [0, 1], progress, hwm=20, now_s=100.5 + LAG_MAX_S, lag_max_s=LAG_MAX_S) is None


def test_the_high_watermark_is_the_smallest_log_end_among_in_sync_replicas() -> None:
    progress = {1: _progress(7, fetch_s=0.0, caught_up_s=0.0), 2: _progress(9, fetch_s=0.0, caught_up_s=0.0)}
    assert high_watermark(0, 10, [0, 1, 2], progress) == 7
    assert high_watermark(0, 10, [0, 2], progress) == 9, "a follower outside the ISR does not hold it back"
    assert high_watermark(0, 10, [0], progress) == 10


def test_an_in_sync_follower_that_has_not_fetched_yet_exposes_nothing() -> None:
    """A new leader's followers have no progress: nothing is known to be on them, so nothing is committed."""
    assert high_watermark(0, 10, [0, 1], {}) == 0
