"""A replica restarted with records its in-sync peers never confirmed, then elected, shows readers none of them.

Kafka's reason for `replication-offset-checkpoint`: a follower fetches records past the high watermark (written by
the leader, not yet on every in-sync replica). If it restarts and trusts its log end as the high watermark, and is
then elected, readers are served records that vanish when it fails before the others have them.

A whole `Broker` on temp files over the in-memory metadata double (no socket): it first leads alone (the committed
records), then its log gets the follower's extra records and it "crashes"; the metadata is edited as a cluster's
would be — replicas and in-sync replicas [0, 1, 2], a new leader epoch with this broker elected — and it starts again.
Brokers 1 and 2 never fetch (they do not exist), so nothing past the committed records may become readable.
"""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from metadata_double import SNAPSHOT, InMemoryMetadata

from goqueue import broker as broker_module
from goqueue.broker import Broker
from goqueue.config import Settings
from goqueue.metrics import BrokerMetrics
from goqueue.models import TopicCreate
from goqueue.records import RecordIn
from goqueue.replicas.partition import Partition
from goqueue.replication import commands
from goqueue.replication.peers import ReplicaFetchRequest
from goqueue.server import compose_broker
from goqueue.storage import batch as batches
from goqueue.storage.log import LogConfig, PartitionLog

pytestmark = pytest.mark.unit

COMMITTED = [f"c-{n}" for n in range(20)]
UNCOMMITTED = [f"u-{n}" for n in range(10)]


def settings(root: Path) -> Settings:
    return Settings.model_validate({
        "broker": {"host": "127.0.0.1"},
        "storage": {"dataDir": str(root / "data"), "walDir": str(root / "wal")},
        "replication": {"replicaLagMax": "1h"}})  # the absent followers stay in sync: nothing commits without them


async def start(root: Path) -> Broker:
    broker = compose_broker(settings(root), BrokerMetrics(), lambda: 1_800_000_000.0, metadata_factory=InMemoryMetadata)
    await broker.start()
    return broker


def values(data: bytes) -> list[str]:
    records, _ = batches.records_from(data, 0, 10_000)
    return [r.value.decode() for r in records if r.value is not None]


async def restart_as_leader_with_unconfirmed_records(root: Path) -> Broker:
    """COMMITTED acknowledged while leading alone; UNCOMMITTED then appended as a follower fetching past the high
    watermark would, a crash, and a restart elected leader of [0, 1, 2] in a new epoch."""
    broker = await start(root)
    await broker.create_topic(TopicCreate(name="t", partitions=1))
    await broker.produce("t", [RecordIn(None, v.encode(), []) for v in COMMITTED], partition=0)
    directory = broker.replicas.partitions[("t", 0)].log.directory
    epoch = broker.replicas.partitions[("t", 0)].leader_epoch
    await broker.stop()

    # What a follower holds after fetching past the high watermark: durable here, on no other in-sync replica.
    plog = PartitionLog.open(directory, LogConfig())
    plog.append(batches.build_batch([(None, v.encode(), []) for v in UNCOMMITTED], 0), leader_epoch=epoch)
    plog.flush()
    for segment in plog.segments:  # SIGKILL: nothing sealed, nothing checkpointed
        segment.close()

    snapshot = root / "wal" / SNAPSHOT
    state = pickle.loads(snapshot.read_bytes())
    partition = state["topics"]["t"]["partition_state"][0]
    partition.update(replicas=[0, 1, 2], isr=[0, 1, 2], leader=0, leader_epoch=partition["leader_epoch"] + 1)
    snapshot.write_bytes(pickle.dumps(state))
    return await start(root)


def test_a_restarted_replica_elected_leader_exposes_only_committed_records(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        broker = await restart_as_leader_with_unconfirmed_records(tmp_path)
        try:
            replica = broker.replicas.partitions[("t", 0)]
            assert replica.is_leader
            assert replica.log.log_end_offset == len(COMMITTED) + len(UNCOMMITTED)
            fetched = await broker.fetch("t", 0, 0, 1 << 20)  # after HIGH_WATERMARK_SETTLE_S: nobody fetches
            assert values(fetched.data) == COMMITTED
            assert fetched.high_watermark == len(COMMITTED)
            assert broker.partition_offsets("t", 0)["latest"] == len(COMMITTED)
            # Waited the longest once this epoch: no later read waits (were it to, this would wait an hour).
            assert replica.settle_waived
            monkeypatch.setattr(broker_module, "HIGH_WATERMARK_SETTLE_S", 3600.0)
            again = await asyncio.wait_for(broker.fetch("t", 0, 0, 1 << 20), 10)
            assert values(again.data) == COMMITTED
        finally:
            await broker.stop()

    asyncio.run(scenario())


def test_a_new_leaders_reads_wait_for_its_followers_to_settle_the_high_watermark(tmp_path: Path) -> None:
    """Seen in CI (the chart-upgrade test): a record acknowledged by the old leader, read at once from the new one,
    was missing — the new leader's high watermark was the one it last heard as a follower. A read now waits (briefly)
    until the followers' first fetches cover what the new leader held when elected."""
    async def scenario() -> None:
        broker = await restart_as_leader_with_unconfirmed_records(tmp_path)
        try:
            end = len(COMMITTED) + len(UNCOMMITTED)
            fetching = asyncio.create_task(broker.fetch("t", 0, 0, 1 << 20))
            latest = asyncio.create_task(broker.partition_offsets_routed("t", 0))
            await asyncio.sleep(0.2)
            assert not fetching.done(), "records served before the high watermark settled"
            assert not latest.done(), "offsets served before the high watermark settled"
            for follower in (1, 2):
                await broker.replicas.serve_replica_fetch(
                    ReplicaFetchRequest(follower, 0, 1 << 20, [("t", 0, end, broker.replicas.partitions[("t", 0)]
                                                                 .leader_epoch)]))
            fetched = await asyncio.wait_for(fetching, 0.5)
            assert values(fetched.data) == COMMITTED + UNCOMMITTED
            assert fetched.high_watermark == end
            assert (await asyncio.wait_for(latest, 0.5))["latest"] == end
        finally:
            await broker.stop()

    asyncio.run(scenario())


def test_a_new_leader_epoch_waits_for_its_own_high_watermark_again(tmp_path: Path) -> None:
    """The waiver of one epoch (`settle_waived`) is not carried into the next: a new election records its own log end
    and reads wait for it again."""
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=1 << 20))
    plog.append(batches.build_batch([(None, b"v", [])] * 3, 0), 0)
    plog.flush()
    partition = Partition("t", 0, plog, broker_id=0)
    state = {"replicas": [0, 1], "leader": 0, "leader_epoch": 1, "isr": [0, 1], "version": 1}
    partition.apply_metadata(state)
    assert (partition.epoch_start_offset, partition.high_watermark_settled) == (3, False)
    partition.settle_waived = True
    assert partition.high_watermark_settled
    partition.apply_metadata({**state, "leader_epoch": 2, "version": 2})
    assert not partition.high_watermark_settled
    plog.close()


def test_a_leader_epoch_that_cannot_be_written_defers_leadership_until_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A full volume while leadership moves (issue 13 item 4): the new epoch cannot be written down, so the broker
    does not lead on it — a restart would forget it and followers' truncation relies on it. No traceback, no
    'reconcile failed'; the partition keeps its old epoch, and takes the new one on a timer once the write works
    (no further metadata change is needed)."""
    import errno

    from goqueue.replicas import manager as replica_manager
    from goqueue.replication import epochs

    monkeypatch.setattr(replica_manager, "LEADERSHIP_RETRY_S", 0.05)
    real_write = epochs.write_file_atomically
    volume_full = True

    def write(path: Path, data: bytes) -> None:
        if volume_full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(epochs, "write_file_atomically", write)

    async def scenario() -> None:
        nonlocal volume_full
        volume_full = False
        broker = await start(tmp_path)
        try:
            await broker.create_topic(TopicCreate(name="t", partitions=1))
            replica = broker.replicas.partitions[("t", 0)]
            old_epoch, old_version = replica.leader_epoch, replica.version
            volume_full = True
            await broker.membership.propose(commands.elect_leader("t", 0, expected_epoch=old_epoch,
                                                                  expected_version=None, leader=0, isr=[0]))
            await broker.replicas.reconcile()
            assert replica.leader_epoch == old_epoch, "led on an epoch that is not on disk"
            assert replica.epochs.latest_epoch == old_epoch
            assert replica.version == old_version, "half the new partition state was adopted"
            volume_full = False
            for _ in range(200):
                if replica.leader_epoch == old_epoch + 1:
                    break
                await asyncio.sleep(0.01)
            assert (replica.leader_epoch, replica.epochs.latest_epoch) == (old_epoch + 1, old_epoch + 1)
            assert replica.is_leader
        finally:
            await broker.stop()

    with caplog.at_level("INFO"):
        asyncio.run(scenario())
    events = [r.getMessage() for r in caplog.records]
    assert "partition.leadership_deferred" in events
    assert "broker.reconcile_failed" not in events
