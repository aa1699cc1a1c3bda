"""The leader's ISR rules: who stays in sync, who may come back, and that old progress never counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from goqueue.config import Settings
from goqueue.replicas.isr_upkeep import IsrUpkeep
from goqueue.replicas.partition import Partition, Role
from goqueue.replication.controller import controlled_shutdown_plan
from goqueue.replication.isr import FollowerProgress, forget_stale_joiners, high_watermark, next_isr, record_fetch
from goqueue.replication.metadata import MetadataConflict
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, PartitionLog

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
        record_fetch(partition.followers[broker], 20, 20, now_s=101.0, join_offset=None)
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 102.0, LAG_MAX_S) is None

    partition.apply_metadata(_state([0, 2], 2), now_s=103.0)  # broker 1 left (leave_isr)

    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 104.0, LAG_MAX_S) is None, \
        "progress from before it left must not bring it back"
    record_fetch(partition.followers[1], 0, 20, now_s=105.0, join_offset=20)  # it fetches again, from its empty log
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 105.0, LAG_MAX_S) is None
    record_fetch(partition.followers[1], 20, 20, now_s=106.0, join_offset=20)  # it has everything again
    assert next_isr(0, partition.isr, partition.replicas, partition.followers, 20, 106.0, LAG_MAX_S) == [0, 1, 2]


def test_an_in_sync_follower_fetching_below_the_high_watermark_leaves_at_once() -> None:
    progress = {1: FollowerProgress(), 2: FollowerProgress()}
    for broker in (1, 2):
        record_fetch(progress[broker], 20, 20, now_s=100.0, join_offset=None)
    # restarted with a damaged volume, still within the lag window
    record_fetch(progress[1], 3, 20, now_s=101.0, join_offset=None)

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
    progress[1].joining = True
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


def test_a_follower_one_round_behind_at_every_tick_joins_by_the_fetch_that_reached_the_high_watermark() -> None:
    """The CI stall: under steady acks=all load the high watermark had always moved on since the new replica's last
    fetch, so a comparison made at the ISR tick kept it out for good and the reassignment never completed. Its fetch
    that reached the high watermark decides; from then on the high watermark waits for it, so it is never short of
    what was acknowledged when the metadata lists it in the ISR."""
    progress = {2: FollowerProgress()}
    record_fetch(progress[2], 20, leader_log_end=25, now_s=100.0, join_offset=None)  # in the ISR, at the high watermark
    record_fetch(progress.setdefault(1, FollowerProgress()), 20, leader_log_end=25, now_s=100.0, join_offset=20)
    record_fetch(progress[2], 25, leader_log_end=25, now_s=100.1, join_offset=None)  # the in-sync follower goes on
    assert high_watermark(0, 25, [0, 2], progress) == 20, "the high watermark passed a joining follower"
    assert next_isr(0, [0, 2], [0, 1, 2], progress, hwm=20, now_s=100.5, lag_max_s=LAG_MAX_S) == [0, 1, 2]


def test_a_fetch_short_of_the_join_offset_does_not_join_and_one_that_falls_short_again_stops_joining() -> None:
    progress = {1: FollowerProgress()}
    record_fetch(progress[1], 19, leader_log_end=25, now_s=100.0, join_offset=20)
    assert next_isr(0, [0], [0, 1], progress, hwm=20, now_s=100.0, lag_max_s=LAG_MAX_S) is None
    assert high_watermark(0, 25, [0], progress) == 25, "a follower outside the ISR that is not joining held it back"
    record_fetch(progress[1], 20, leader_log_end=25, now_s=101.0, join_offset=20)
    assert high_watermark(0, 25, [0], progress) == 20
    record_fetch(progress[1], 0, leader_log_end=25, now_s=102.0, join_offset=20)  # restarted with an empty log
    assert next_isr(0, [0], [0, 1], progress, hwm=20, now_s=102.0, lag_max_s=LAG_MAX_S) is None
    assert high_watermark(0, 25, [0], progress) == 25


def test_a_joining_follower_that_stops_fetching_stops_holding_the_high_watermark_back() -> None:
    progress = {1: FollowerProgress()}
    record_fetch(progress[1], 20, leader_log_end=25, now_s=100.0, join_offset=20)
    assert not forget_stale_joiners(progress, now_s=100.0 + LAG_MAX_S, lag_max_s=LAG_MAX_S)
    assert high_watermark(0, 25, [0], progress) == 20
    assert forget_stale_joiners(progress, now_s=100.5 + LAG_MAX_S, lag_max_s=LAG_MAX_S)
    assert high_watermark(0, 25, [0], progress) == 25
    assert next_isr(0, [0], [0, 1], progress, hwm=25, now_s=100.5 + LAG_MAX_S, lag_max_s=LAG_MAX_S) is None


def test_only_a_replica_outside_the_isr_may_join_and_not_short_of_the_epoch_start(leader: Partition) -> None:
    partition = leader
    partition.apply_metadata({**_state([0, 1], 2), "replicas": [0, 1, 2]}, now_s=101.0)
    assert partition.join_offset(1) is None, "already in sync"
    assert partition.join_offset(3) is None, "not a replica"
    partition.log.high_watermark, partition.epoch_start_offset = 7, 12  # elected with records not yet committed
    assert partition.join_offset(2) == 12
    partition.log.high_watermark = 15
    assert partition.join_offset(2) == 15


def test_a_follower_past_the_high_watermark_but_short_of_the_new_leaders_epoch_start_does_not_join() -> None:
    """A new leader's high watermark may lag its log end when it was elected (12 here): the records between may have
    been acknowledged by the previous leader, so a follower without them must not be in the ISR."""
    progress = {1: FollowerProgress()}
    record_fetch(progress[1], 10, leader_log_end=12, now_s=100.0, join_offset=12)
    assert next_isr(0, [0], [0, 1], progress, hwm=7, now_s=100.0, lag_max_s=LAG_MAX_S) is None
    record_fetch(progress[1], 12, leader_log_end=12, now_s=100.5, join_offset=12)
    assert next_isr(0, [0], [0, 1], progress, hwm=7, now_s=100.5, lag_max_s=LAG_MAX_S) == [0, 1]


def test_a_follower_a_round_behind_under_steady_load_stays_in_sync_and_a_stuck_one_leaves() -> None:
    """Kafka's rule: a fetch starting at or past the leader's log end when the previous fetch was served shows the
    follower caught up as of that previous fetch. Judged only against the leader's latest end, a follower always a
    batch behind under steady load was never caught up, and left the ISR right after joining it."""
    behind, stuck = FollowerProgress(), FollowerProgress()
    for step in range(30):  # 15 s of fetches; the leader is always one batch of 10 ahead of where they fetch
        now = 100.0 + step * 0.5
        record_fetch(behind, 10 * step, leader_log_end=10 * step + 10, now_s=now, join_offset=None)
        record_fetch(stuck, 10, leader_log_end=10 * step + 10, now_s=now, join_offset=None)  # its appends fail
    progress = {1: behind, 2: stuck}
    assert next_isr(0, [0, 1, 2], [0, 1, 2], progress, hwm=10, now_s=114.5, lag_max_s=LAG_MAX_S) == [0, 1]


def _leader_with_records(tmp_path: Path, count: int) -> Partition:
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    partition = Partition("t", 0, plog, broker_id=0)
    partition.apply_metadata({"leader": 0, "leader_epoch": 0, "replicas": [0, 1, 2], "isr": [0, 1], "version": 1},
                             now_s=100.0)
    plog.append(batches.build_batch([(None, b"v", [])] * count, 0), leader_epoch=0)  # written since it was elected
    plog.flush()
    return partition


def test_a_follower_named_by_a_pending_expansion_holds_the_high_watermark_even_if_it_stops_joining(
        tmp_path: Path) -> None:
    partition = _leader_with_records(tmp_path, 20)
    try:
        record_fetch(partition.followers[1], 20, 20, now_s=101.0, join_offset=None)
        record_fetch(partition.followers[2], 10, 20, now_s=101.0, join_offset=partition.join_offset(2))
        partition.log.high_watermark = 10
        record_fetch(partition.followers[2], 10, 20, now_s=101.0, join_offset=partition.join_offset(2))
        partition.proposed_isr = [0, 1, 2]  # the ISR upkeep proposed adding it
        record_fetch(partition.followers[2], 0, 20, now_s=101.5, join_offset=partition.join_offset(2))  # lost its copy
        assert not partition.followers[2].joining
        assert not partition.advance_high_watermark(), "the high watermark passed a follower the pending ISR names"
        partition.apply_metadata({"leader": 0, "leader_epoch": 0, "replicas": [0, 1, 2], "isr": [0, 1],
                                  "version": 2}, now_s=102.0)  # the expansion was refused (a conflict)
        assert partition.log.high_watermark == 20, "applying the metadata did not move the high watermark on"
    finally:
        partition.log.close()


def test_a_joining_follower_that_stops_being_a_replica_stops_holding_the_high_watermark(tmp_path: Path) -> None:
    partition = _leader_with_records(tmp_path, 20)
    try:
        partition.log.high_watermark = 10
        record_fetch(partition.followers[1], 20, 20, now_s=101.0, join_offset=None)
        record_fetch(partition.followers[2], 10, 20, now_s=101.0, join_offset=partition.join_offset(2))
        assert partition.followers[2].joining
        assert not partition.advance_high_watermark()  # it waits for the joiner at 10
        partition.apply_metadata({"leader": 0, "leader_epoch": 0, "replicas": [0, 1], "isr": [0, 1], "version": 2},
                                 now_s=102.0)  # a move away from broker 2 was cancelled: it drops its copy
        assert 2 not in partition.followers
        assert partition.log.high_watermark == 20
    finally:
        partition.log.close()


def test_the_isr_upkeep_names_its_expansion_to_the_high_watermark_until_the_proposal_is_answered(
        tmp_path: Path) -> None:
    """While the proposal adding broker 2 is out, the high watermark waits for broker 2 even if it stops joining
    (here it comes back with an empty log); once the proposal is refused it no longer does."""
    partition = _leader_with_records(tmp_path, 20)
    answered = asyncio.Event()
    proposed: list[dict[str, Any]] = []

    async def propose(command: dict[str, Any]) -> None:
        proposed.append(command)
        await answered.wait()
        raise MetadataConflict("refused")

    async def scenario() -> None:
        upkeep = IsrUpkeep(Settings.model_validate({"broker": {"id": 0}}), None,  # type: ignore[arg-type]
                           SimpleNamespace(propose=propose), lambda: [partition])  # type: ignore[arg-type]
        partition.log.high_watermark = 10
        record_fetch(partition.followers[1], 20, 20, now_s=time.monotonic(), join_offset=None)
        record_fetch(partition.followers[2], 10, 20, now_s=time.monotonic(), join_offset=partition.join_offset(2))
        update = asyncio.ensure_future(upkeep._update(partition))
        await asyncio.sleep(0)
        assert [c["isr"] for c in proposed] == [[0, 1, 2]]
        record_fetch(partition.followers[2], 0, 20, now_s=time.monotonic(), join_offset=partition.join_offset(2))
        assert not partition.advance_high_watermark(), "passed broker 2 while the proposal adding it was out"
        answered.set()
        await update
        assert partition.advance_high_watermark()
        assert partition.log.high_watermark == 20

    try:
        asyncio.run(scenario())
    finally:
        partition.log.close()
