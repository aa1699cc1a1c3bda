"""A wait cancelled just as what it waits for completes is cancelled, not handed the result.

Python 3.11's `asyncio.wait_for` returns the result of a future that completes in the same loop turn as its
caller's cancellation, and the cancellation is lost (fixed in 3.12). CI saw it stop a broker from exiting: its ISR
upkeep was cancelled as its ISR change committed, went on ticking, and the stop awaited it for good. The broker waits
with `asyncio.timeout` instead; these tests cancel such waits in that very turn, and keep `wait_for` out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import FAIL_REASON

from goqueue.replicas.partition import Partition
from goqueue.replication.raft import RaftMetadata
from goqueue.storage.log import LogConfig, PartitionLog

pytestmark = pytest.mark.unit


def cancelled_as_it_ends(wait: Callable[[], Awaitable[Any]], end: Callable[[], None]) -> bool:
    """Starts `wait`, then in one loop turn ends what it waits for and cancels it: True when it was cancelled."""
    async def scenario() -> bool:
        task = asyncio.ensure_future(wait())
        for _ in range(3):
            await asyncio.sleep(0)  # until it waits
        end()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    return asyncio.run(scenario())


def test_a_metadata_proposal_cancelled_as_it_commits_is_cancelled() -> None:
    raft = RaftMetadata.__new__(RaftMetadata)  # no Raft node: only the wait for the commit is exercised
    committed: list[Callable[[Any, int], None]] = []
    raft._apply = lambda command, callback: committed.append(callback)
    command = {"op": "change_isr", "topic": "t", "partition": 0, "leader_epoch": 0, "expected_version": 0,
               "isr": [0]}
    assert cancelled_as_it_ends(lambda: raft.propose(command, 5.0),  # type: ignore[arg-type]
                                lambda: committed[0](None, FAIL_REASON.SUCCESS))


def test_a_wait_for_a_partition_to_change_cancelled_as_it_changes_is_cancelled(tmp_path: Path) -> None:
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig())
    try:
        partition = Partition("t", 0, plog, broker_id=0)
        assert cancelled_as_it_ends(lambda: partition.wait_changed(5.0), partition.notify)
    finally:
        plog.close()


def test_the_product_never_waits_with_asyncio_wait_for() -> None:
    """The broker, its clients, the operator and the test harness run on Python 3.11: `asyncio.timeout` there."""
    root = Path(__file__).resolve().parents[2]
    offenders = [f"{path.relative_to(root)}:{number}"
                 for package in ("broker/goqueue", "operator/goqueue_operator", "harness/goqueue_harness")
                 for path in sorted((root / package).rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1) if "wait_for(" in line]
    assert offenders == []
