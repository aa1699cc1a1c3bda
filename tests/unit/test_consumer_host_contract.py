"""The `ConsumerHost` contract (goqueue/consumers/port.py), held by both of its implementations: the broker's
adapter (`BrokerConsumerHost` over a `Broker` on temp files, its metadata group the in-memory one-member double) and
the in-memory double the coordinator's unit tests run on (consumer_host_double.py). What the coordinator relies on
is checked against each, so the double cannot drift from the broker unnoticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from consumer_host_double import ConsumerHostDouble
from metadata_double import InMemoryMetadata

from goqueue.config import Settings
from goqueue.consumer_host import BrokerConsumerHost
from goqueue.consumers.port import ConsumerHost, Leadership, OutgoingRecord, RoleChange
from goqueue.errors import NotLeader, OffsetOutOfRange, TopicAlreadyExists, TopicNotFound
from goqueue.metrics import BrokerMetrics
from goqueue.models import TopicCreate
from goqueue.server import compose_broker
from goqueue.storage import batch as batches

pytestmark = pytest.mark.unit

START_S = 1_800_000_000.0


@asynccontextmanager
async def broker_host(root: Path) -> AsyncIterator[ConsumerHost]:
    settings = Settings.model_validate({"broker": {"host": "127.0.0.1"},
                                        "storage": {"dataDir": str(root / "data"), "walDir": str(root / "wal")}})
    broker = compose_broker(settings, BrokerMetrics(), lambda: START_S, metadata_factory=InMemoryMetadata)
    await broker.start()
    try:
        yield BrokerConsumerHost(broker)
    finally:
        await broker.stop()


@asynccontextmanager
async def double_host(root: Path) -> AsyncIterator[ConsumerHost]:
    del root
    yield ConsumerHostDouble(lambda: START_S)


HOSTS = {"broker": broker_host, "double": double_host}


@pytest.fixture(params=sorted(HOSTS))
def with_host(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Callable[[ConsumerHost], Awaitable[None]]],
                                                                            None]:
    factory = HOSTS[request.param]

    def run(check: Callable[[ConsumerHost], Awaitable[None]]) -> None:
        async def scenario() -> None:
            async with factory(tmp_path) as host:
                await check(host)

        asyncio.run(scenario())

    return run


def values(data: bytes) -> list[bytes | None]:
    return [r.value for pos, _ in batches.iter_headers(data) for r in batches.decode_records(data, pos)]


Run = Callable[[Callable[[ConsumerHost], Awaitable[None]]], None]


def test_topics_are_looked_up_created_and_grown(with_host: Run) -> None:
    async def check(host: ConsumerHost) -> None:
        with pytest.raises(TopicNotFound):
            host.topic("t")
        await host.create_topic(TopicCreate(name="t", partitions=2))
        assert (host.topic("t").name, host.topic("t").partitions) == ("t", 2)
        assert "t" in host.topics()
        with pytest.raises(TopicAlreadyExists):
            await host.create_topic(TopicCreate(name="t", partitions=2))
        await host.update_topic("t", 3, {"segmentBytes": 1 << 20})
        assert (host.topic("t").partitions, host.topic("t").config.segment_bytes) == (3, 1 << 20)
        assert set(host.partition_leaders("t")) == {0, 1, 2}
        assert host.partition_leaders("missing") == {}
    with_host(check)


def test_produce_fetch_and_offsets_of_a_user_partition(with_host: Run) -> None:
    async def check(host: ConsumerHost) -> None:
        await host.create_topic(TopicCreate(name="t", partitions=1))
        replica = host.local_replica("t", 0)
        assert replica is not None
        woken = replica.changed()
        await host.produce("t", [OutgoingRecord(None, b"a", [])])
        await host.produce("t", [OutgoingRecord(None, b"b", [], START_S_MS + 5)])
        assert woken.is_set(), "an append wakes whoever waits on the replica"
        fetched = await host.fetch("t", 0, 0, host.max_fetch_bytes)
        assert (values(fetched.data), fetched.high_watermark) == ([b"a", b"b"], 2)
        assert (await host.fetch("t", 0, 2, host.max_fetch_bytes)).data == b""  # at the high watermark: nothing
        with pytest.raises(OffsetOutOfRange):
            await host.fetch("t", 0, 3, host.max_fetch_bytes)
        bounds = await host.offsets("t", 0)
        assert (bounds.log_start, bounds.high_watermark, bounds.for_timestamp) == (0, 2, None)
        assert (await host.offsets("t", 0, START_S_MS + 1)).for_timestamp == 1
        assert (await host.offsets("t", 0, START_S_MS + 10)).for_timestamp == 2  # none is: the log end
        assert (replica.log_start_offset, replica.high_watermark, replica.log_end_offset) == (0, 2, 2)
        assert values(replica.read(0, 1 << 20, upto=1)) == [b"a"]
    with_host(check)


START_S_MS = int(START_S * 1000)


def test_the_local_append_is_fenced_by_the_leader_epoch(with_host: Run) -> None:
    async def check(host: ConsumerHost) -> None:
        await host.create_topic(TopicCreate(name="__state", partitions=1), internal=True)
        [role] = host.roles("__state")
        assert role == RoleChange("__state", 0, True, role.leader_epoch)
        assert host.partition_leaders("__state") == {0: Leadership(host.broker_id, role.leader_epoch)}
        first = await host.append_local("__state", 0, role.leader_epoch, [OutgoingRecord(b"k", b"v", [])])
        assert first == 0
        with pytest.raises(NotLeader):  # an epoch this broker does not lead at: nothing is written, nothing forwarded
            await host.append_local("__state", 0, role.leader_epoch + 1, [OutgoingRecord(b"k", b"w", [])])
        replica = host.local_replica("__state", 0)
        assert replica is not None
        assert (replica.is_leader, replica.leader_epoch, replica.log_end_offset) == (True, role.leader_epoch, 1)
        assert host.local_replica("__state", 1) is None
    with_host(check)


def test_role_changes_reach_subscribers_as_values_until_they_unsubscribe(with_host: Run) -> None:
    async def check(host: ConsumerHost) -> None:
        heard: list[RoleChange] = []
        host.subscribe_roles(heard.append)
        await host.create_topic(TopicCreate(name="a", partitions=1))
        assert [(c.topic, c.index, c.is_leader) for c in heard] == [("a", 0, True)]
        host.unsubscribe_roles(heard.append)
        await host.create_topic(TopicCreate(name="b", partitions=1))
        assert [c.topic for c in heard] == ["a"]
        assert [(c.topic, c.is_leader) for c in host.roles("b")] == [("b", True)]
    with_host(check)


def test_the_pause_all_flag_is_cluster_metadata(with_host: Run) -> None:
    async def check(host: ConsumerHost) -> None:
        assert host.paused_all is False
        await host.set_paused_all(True)
        assert host.paused_all is True
        await host.set_paused_all(False)
        assert host.paused_all is False
        assert host.cluster_size == 1
    with_host(check)
