"""`limits.maxPartitions`: a topic create or partition increase that would place more partition replicas on a broker
than the limit is refused with the numbers and the way out, and changes nothing.

A whole broker on temp files over the in-memory metadata double (no socket).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from metadata_double import InMemoryMetadata

from goqueue.broker import Broker
from goqueue.config import Settings
from goqueue.errors import InvalidConfig
from goqueue.metrics import BrokerMetrics
from goqueue.models import TopicCreate
from goqueue.server import compose_broker

pytestmark = pytest.mark.unit


async def start(root: Path, max_partitions: int) -> Broker:
    settings = Settings.model_validate({
        "broker": {"host": "127.0.0.1"}, "limits": {"maxPartitions": max_partitions},
        "storage": {"dataDir": str(root / "data"), "walDir": str(root / "wal")}})
    broker = compose_broker(settings, BrokerMetrics(), metadata_factory=InMemoryMetadata)
    await broker.start()
    return broker


def test_creates_and_growth_past_max_partitions_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        broker = await start(tmp_path, max_partitions=5)
        try:
            await broker.create_topic(TopicCreate(name="a", partitions=3))
            with pytest.raises(InvalidConfig, match=r"6 partition replicas on broker 0; limits.maxPartitions is 5"):
                await broker.create_topic(TopicCreate(name="b", partitions=3))
            assert "b" not in broker.registry.topics
            with pytest.raises(InvalidConfig, match=r"limits\.maxPartitions is 5"):
                await broker.update_topic("a", 6, None)
            assert broker.registry.get("a").partitions == 3
            await broker.update_topic("a", 5, None)  # up to the limit is fine
            assert len(broker.replicas.partitions) == 5
        finally:
            await broker.stop()

    asyncio.run(scenario())
