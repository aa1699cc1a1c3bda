"""The reassignment admin calls on a whole broker over the in-memory metadata double: refused goals are
INVALID_REQUEST with the reason, a stale move is not started (and says why), a started move shows in progress with
its throttle, and cancelling it puts the replicas back and clears the throttle."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from metadata_double import InMemoryMetadata

from goqueue.broker import Broker
from goqueue.cluster.admin import PEER_ASKS, ClusterAdmin
from goqueue.config import Settings
from goqueue.errors import InvalidRequest
from goqueue.metrics import BrokerMetrics
from goqueue.models import (
    PartitionReassignment,
    ReassignmentGoals,
    ReassignmentProgress,
    ReplicaMove,
    TopicCreate,
    TopicPartition,
)
from goqueue.records import RecordIn
from goqueue.replication import commands
from goqueue.server import compose_broker

pytestmark = pytest.mark.unit


async def start(root: Path) -> Broker:
    settings = Settings.model_validate({"broker": {"host": "127.0.0.1"},
                                        "storage": {"dataDir": str(root / "data"), "walDir": str(root / "wal")}})
    broker = compose_broker(settings, BrokerMetrics(), metadata_factory=InMemoryMetadata)
    await broker.start()
    return broker


def test_plan_execute_progress_cancel(tmp_path: Path) -> None:
    async def scenario() -> None:
        broker = await start(tmp_path)
        admin = broker.admin
        try:
            await broker.create_topic(TopicCreate(name="t", partitions=1))
            for goals, message in ((ReassignmentGoals(replication_factor={"t": 2}), r"needs 1\.\.1 brokers"),
                                   (ReassignmentGoals(drain_brokers=[5]), r"brokers \[5\] are not members")):
                with pytest.raises(InvalidRequest, match=message):
                    await admin.propose_reassignment(goals)
            assert (await admin.propose_reassignment(ReassignmentGoals(balance=True))).moves == []

            stale = ReplicaMove(topic="t", partition=0, replicas=[0], target=[1], version=99)
            started, reasons = await admin.execute_reassignment([stale], throttle=1024)
            assert started == 0
            assert len(reasons) == 1
            assert reasons[0].startswith("t/0: t/0 changed (version ")
            assert admin.progress().throttle is None  # nothing moves: no throttle left behind

            await broker.membership.propose(commands.register_broker(
                1, host="127.0.0.9", http_port=1, grpc_port=2, raft_address="127.0.0.9:3", zone=None,
                directory_id="v1", internal_port=4))
            version = broker.membership.view.partition("t", 0)["version"]  # type: ignore[index]
            move = ReplicaMove(topic="t", partition=0, replicas=[0], target=[1], version=version)
            assert await admin.execute_reassignment([move], throttle=1024) == (1, [])
            progress = admin.progress()
            assert (progress.done, progress.throttle) == (False, 1024)
            assert [(p.replicas, p.target, p.copying) for p in progress.partitions] == [([0, 1], [1], [1])]

            assert await admin.cancel_reassignment([TopicPartition(topic="t", partition=3)]) == (
                0, ["t/3: not being reassigned"])
            assert await admin.cancel_reassignment([]) == (1, [])
            assert (admin.progress().done, admin.progress().throttle) == (True, None)
            assert broker.membership.view.partition("t", 0)["replicas"] == [0]  # type: ignore[index]
        finally:
            await broker.stop()

    asyncio.run(scenario())


def test_a_partition_moved_to_fewer_replicas_takes_acks_all_writes_before_its_topic_follows(tmp_path: Path) -> None:
    """Replication factor 2 → 1 with min.insync.replicas 2: partition 0 has moved (one replica, in sync), partition
    1 still moves, so the topic's factor is still 2. Partition 0 must take acks=all writes: min.insync never asks
    for more copies than the partition has."""
    async def scenario() -> None:
        broker = await start(tmp_path)
        try:
            await broker.membership.propose(commands.register_broker(
                1, host="127.0.0.9", http_port=1, grpc_port=2, raft_address="127.0.0.9:3", zone=None,
                directory_id="v1", internal_port=4))
            await broker.membership.propose(commands.create_topic(  # both led here: broker 1 is metadata only
                "t", replication_factor=2, config={"minInsyncReplicas": 2}, created_at_s=0.0,
                assignment={0: [0, 1], 1: [0, 1]}))
            state = broker.membership.view.partition("t", 0)
            assert state is not None
            assert (state["replicas"], state["leader"]) == ([0, 1], 0)
            await broker.membership.propose(commands.begin_reassignment("t", 0, target=[0],
                                                                        expected_version=state["version"]))
            moving = broker.membership.view.partition("t", 0)
            assert moving is not None
            await broker.membership.propose(commands.complete_reassignment("t", 0,
                                                                           expected_version=moving["version"]))
            await broker.replicas.reconcile()
            assert broker.registry.get("t").replication_factor == 2  # partition 1 has not moved
            offsets, _ = await broker.produce("t", [RecordIn(None, b"v", [])], partition=0)
            assert offsets == [(0, 0)]
        finally:
            await broker.stop()

    asyncio.run(scenario())


class CountingPeers:
    """Other brokers answering size questions: counts how many are asked at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.asked = 0

    async def _ask(self) -> None:
        self.asked += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        for _ in range(10):  # stay in flight while the other gathered asks start
            await asyncio.sleep(0)
        self.in_flight -= 1

    async def partition_offsets(self, url: str, topic: str, partition: int, group: None,
                                timeout_s: float) -> dict[str, int]:
        await self._ask()
        return {"sizeBytes": 100}

    async def replica_size(self, url: str, topic: str, partition: int, timeout_s: float) -> int:
        await self._ask()
        return 40


def test_progress_with_bytes_asks_at_most_sixteen_brokers_at_once() -> None:
    """40 moving partitions, each a leader and two new replicas to ask: 120 questions, never more than 16 in flight
    (all at once, they would time out together on a busy cluster)."""
    peers = CountingPeers()
    membership = SimpleNamespace(peers=peers, view=SimpleNamespace(leader=lambda topic, partition: 0),
                                 broker_url=lambda broker_id: f"http://broker-{broker_id}")
    admin = ClusterAdmin(Settings.model_validate({}), membership, SimpleNamespace())  # type: ignore[arg-type]
    moving = [PartitionReassignment(topic="t", partition=i, replicas=[0, 1, 2], target=[0, 1, 2], adding=[1, 2],
                                    removing=[], isr=[0], leader=0, copying=[1, 2]) for i in range(40)]
    admin.progress = lambda: ReassignmentProgress(done=False, partitions=moving)  # type: ignore[method-assign]

    answer = asyncio.run(admin.progress_with_bytes())
    assert (answer.bytes_to_copy, answer.bytes_copied) == (40 * 200, 40 * 80)
    assert peers.asked == 120
    assert peers.most == PEER_ASKS == 16
