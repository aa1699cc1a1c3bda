"""The group coordinator on its port, with an injected clock: no broker, no Raft, no network, no disk, no sleeping.

Its host is the in-memory `ConsumerHost` (consumer_host_double.py): partition logs are lists of record batches, and
a test moves a state partition's leadership by hand (`host.become`), which the coordinator hears of through its role
subscription as it does from a broker.

Time moves only through `Clock.advance`, and expiry runs when a test calls `coordinator.tick()` (the background
ticker is set to an hour), so visibility timeouts and session timeouts are tested exactly at their deadlines.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from consumer_host_double import ConsumerHostDouble
from prometheus_client import generate_latest

from goqueue.config import ConsumersSection
from goqueue.consumers import reader
from goqueue.consumers.backup import backup_metadata
from goqueue.consumers.coordinator import GroupCoordinator
from goqueue.consumers.port import OutgoingRecord, Records
from goqueue.consumers.restore import restore_metadata
from goqueue.consumers.router import GroupRouter
from goqueue.consumers.state_store import STATE_TOPIC
from goqueue.errors import (
    FencedGeneration,
    GroupHasMembers,
    GroupNotFound,
    InflightLimitReached,
    InvalidRequest,
    LeaseNotFound,
    NotCoordinator,
    NotReady,
    OffsetOutOfRange,
    UnknownMember,
)
from goqueue.metrics import ConsumerMetrics
from goqueue.models import (
    AckRequest,
    CommitRequest,
    ConsumeRequest,
    ConsumeResponse,
    GroupMode,
    GroupSpec,
    GroupState,
    JoinRequest,
    NackRequest,
    OffsetCommit,
    OffsetResetRequest,
    ResetTarget,
    TopicCreate,
)
from goqueue.storage.batch import Record
from goqueue_harness.waiting import async_wait_until

pytestmark = pytest.mark.unit

START_S = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now_s = START_S

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


class Kit:
    def __init__(self, host: ConsumerHostDouble, coordinator: GroupCoordinator, clock: Clock) -> None:
        self.host, self.c, self.clock = host, coordinator, clock

    async def produce(self, topic: str, values: list[str], partition: int = 0,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        await self.host.produce(topic, [OutgoingRecord(None, v.encode(), headers or []) for v in values],
                                partition=partition)

    async def consume(self, group: str, consumer: str = "c1", topic: str = "t", **kw: Any) -> ConsumeResponse:
        return await self.c.delivery.consume(group, ConsumeRequest.model_validate(
            {"consumer_id": consumer, "topic": topic, "start_from": "earliest", **kw}), "127.0.0.1")

    async def ordered(self, group: str, member: str, generation: int, **kw: Any) -> ConsumeResponse:
        return await self.c.delivery.consume(group, ConsumeRequest.model_validate(
            {"member_id": member, "generation": generation, "start_from": "earliest", **kw}), "127.0.0.1")

    def dlq(self, topic: str) -> list[Record]:
        return self.host.records(topic)

    def become(self, leader: int, epoch: int) -> None:
        """The metadata moves the leadership of state partition 0 (this broker: `host.broker_id`)."""
        self.host.become(STATE_TOPIC, 0, leader=leader, epoch=epoch)


@asynccontextmanager
async def running(clock: Clock, host: ConsumerHostDouble | None = None, **consumers: Any) -> AsyncIterator[Kit]:
    """A coordinator started on `host` (a new cluster by default), stopped at the end."""
    settings = ConsumersSection.model_validate(
        {"expiryInterval": "1h", "visibilityTimeout": "30s", "sessionTimeout": "10s", **consumers})
    host = host or ConsumerHostDouble(clock)
    coordinator = GroupCoordinator(host, settings, ConsumerMetrics(host.metrics_registry), clock)
    try:
        await coordinator.start()
        yield Kit(host, coordinator, clock)
    finally:
        await coordinator.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def with_topic(kit: Kit, partitions: int = 1, name: str = "t") -> None:
    await kit.host.create_topic(TopicCreate(name=name, partitions=partitions))


def test_visibility_timeout_redelivers_exactly_at_the_deadline(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.produce("t", ["a", "b", "c"])
            first = await kit.consume("g", "c1")
            assert [r.value for r in first.records] == ["a", "b", "c"]
            assert all(r.delivery_count == 1 for r in first.records)
            clock.advance(29.9)
            await kit.c.tick()
            assert (await kit.consume("g", "c2")).records == []  # still leased to c1
            clock.advance(0.1)
            await kit.c.tick()
            again = await kit.consume("g", "c2")
            assert [(r.value, r.delivery_count) for r in again.records] == [("a", 2), ("b", 2), ("c", 2)]
            # c1's late ack of its expired lease still counts: the work was done
            late = await kit.c.delivery.ack("g", AckRequest(lease_ids=[first.records[0].lease_id or ""]))
            assert late.acked == 1
            done = await kit.c.delivery.ack("g", AckRequest(lease_ids=[r.lease_id or "" for r in again.records]))
            assert (done.acked, done.already_done) == (2, 1)
            offsets = (await kit.c.describe("g")).offsets
            assert [(o.committed, o.lag) for o in offsets] == [(3, 0)]
    run(scenario)


def test_poison_message_reaches_the_dead_letter_topic_with_its_history(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock, maxDeliveries=3) as kit:
            await with_topic(kit)
            await kit.produce("t", ["poison", "fine"], headers=[("trace", b"42")])
            for delivery in (1, 2):
                got = await kit.consume("g", max_records=1)
                assert (got.records[0].value, got.records[0].delivery_count) == ("poison", delivery)
                await kit.c.delivery.nack("g", NackRequest(lease_ids=[got.records[0].lease_id or ""],
                                                           reason="parse error"))
            third = await kit.consume("g", max_records=1)
            assert third.records[0].delivery_count == 3
            clock.advance(30)  # the third lease expires too: maxDeliveries reached
            await kit.c.tick()
            [dead] = kit.dlq("t.dlq")
            headers = dict(dead.headers)
            assert dead.value == b"poison"
            assert headers["trace"] == b"42"
            assert headers["goqueue.dlq.reason"] == b"max-deliveries-exceeded"
            assert headers["goqueue.dlq.source-topic"] == b"t"
            assert headers["goqueue.dlq.source-partition"] == b"0"
            assert headers["goqueue.dlq.source-offset"] == b"0"
            assert headers["goqueue.dlq.delivery-count"] == b"3"
            assert headers["goqueue.dlq.last-error"] == b"parse error"
            rest = await kit.consume("g")
            assert [r.value for r in rest.records] == ["fine"]  # the poison is never delivered again
            await kit.c.delivery.ack("g", AckRequest(lease_ids=[rest.records[0].lease_id or ""]))
            assert (await kit.c.describe("g")).offsets[0].committed == 2
            scrape = generate_latest(kit.host.metrics_registry).decode()
            assert 'goqueue_dead_lettered_messages_total{group="g",topic="t"} 1.0' in scrape
    run(scenario)


def test_nack_at_the_last_delivery_dead_letters_at_once(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock, maxDeliveries=1) as kit:
            await with_topic(kit)
            await kit.produce("t", ["bad"])
            got = await kit.consume("g")
            result = await kit.c.delivery.nack("g", NackRequest(lease_ids=[got.records[0].lease_id or ""]))
            assert result.dead_lettered == 1
            assert [r.value for r in kit.dlq("t.dlq")] == [b"bad"]
            assert kit.c.inflight("g", 10).total == 0
    run(scenario)


def test_nack_delay_and_release(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.produce("t", ["x", "y"])
            got = await kit.consume("g")
            x, y = (r.lease_id or "" for r in got.records)
            await kit.c.delivery.nack("g", NackRequest(lease_ids=[x], delay_s=5))
            await kit.c.delivery.release("g", AckRequest(lease_ids=[y]))
            now = await kit.consume("g")
            assert [(r.value, r.delivery_count) for r in now.records] == [("y", 1)]  # release is not a delivery
            clock.advance(5)
            later = await kit.consume("g")
            assert [(r.value, r.delivery_count) for r in later.records] == [("x", 2)]
            stale = await kit.c.delivery.nack("g", NackRequest(lease_ids=[x]))
            assert stale.stale == [x]
    run(scenario)


def test_inflight_capacity_bounds_unacked_messages(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock, inflightCapacity=2) as kit:
            await with_topic(kit)
            await kit.produce("t", [str(n) for n in range(5)])
            got = await kit.consume("g", max_records=5)
            assert len(got.records) == 2
            with pytest.raises(InflightLimitReached):
                await kit.consume("g")
            await kit.c.delivery.ack("g", AckRequest(lease_ids=[got.records[0].lease_id or ""]))
            assert [r.value for r in (await kit.consume("g", max_records=5)).records] == ["2"]
            scrape = generate_latest(kit.host.metrics_registry).decode()
            assert 'goqueue_inflight_messages{group="g"} 2.0' in scrape
            assert 'goqueue_inflight_capacity{group="g"} 2.0' in scrape
            assert 'goqueue_consumer_lag{group="g",partition="0",topic="t"} 4.0' in scrape
    run(scenario)


def test_pause_is_a_state_not_an_error(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.c.declare("g", GroupSpec(mode=GroupMode.SHARED, topics=["t"]))  # starts at latest
            await kit.produce("t", ["m"])
            await kit.c.pause("g")
            paused = await kit.consume("g")
            assert (paused.paused, paused.records, paused.state) == (True, [], GroupState.PAUSED)
            await kit.c.resume("g")
            await kit.c.pause(None)
            assert (await kit.consume("g")).paused
            assert (await kit.c.describe("g")).state is GroupState.PAUSED
            await kit.c.resume(None)
            assert [r.value for r in (await kit.consume("g")).records] == ["m"]
    run(scenario)


def test_long_poll_wakes_when_a_record_arrives(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            waiting = asyncio.create_task(kit.consume("g", wait_ms=20_000))
            await asyncio.sleep(0)  # the consume starts; wherever it is, the record must wake it
            await kit.produce("t", ["late"])
            got = await asyncio.wait_for(waiting, 10)  # well before its 20 s long-poll would end
            assert [r.value for r in got.records] == ["late"]
    run(scenario)


def test_rebalance_when_a_member_dies(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=4)
            a = await kit.c.join("o", JoinRequest(client_id="a", topics=["t"]), "h")
            b = await kit.c.join("o", JoinRequest(client_id="b", topics=["t"]), "h")
            a = await kit.c.join("o", JoinRequest(member_id=a.member_id, client_id="a", topics=["t"]), "h")
            assert (len(a.assignments), len(b.assignments), a.generation) == (2, 2, 2)
            assert (await kit.c.describe("o")).state is GroupState.STABLE
            clock.advance(9)
            kit.c.heartbeat("o", a.member_id, a.generation)  # b stays silent
            clock.advance(2)
            await kit.c.tick()
            beat = kit.c.heartbeat("o", a.member_id, a.generation)
            assert beat.rejoin
            assert beat.generation == 3
            again = await kit.c.join("o", JoinRequest(member_id=a.member_id, client_id="a", topics=["t"]), "h")
            assert sorted(tp.partition for tp in again.assignments) == [0, 1, 2, 3]
            assert (await kit.c.describe("o")).state is GroupState.STABLE
            with pytest.raises(UnknownMember):
                kit.c.heartbeat("o", b.member_id, b.generation)
    run(scenario)


def test_commits_and_reads_from_a_fenced_generation_are_rejected(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=2)
            await kit.produce("t", ["p0"], partition=0)
            a = await kit.c.join("o", JoinRequest(client_id="a", topics=["t"]), "h")
            got = await kit.ordered("o", a.member_id, a.generation)
            assert [r.value for r in got.records] == ["p0"]
            await kit.c.join("o", JoinRequest(client_id="b", topics=["t"]), "h")  # generation 2
            with pytest.raises(FencedGeneration):
                await kit.c.commit("o", CommitRequest(member_id=a.member_id, generation=a.generation,
                                                      offsets=[OffsetCommit(topic="t", partition=0, offset=1)]))
            with pytest.raises(FencedGeneration):
                await kit.ordered("o", a.member_id, a.generation)
            a2 = await kit.c.join("o", JoinRequest(member_id=a.member_id, client_id="a", topics=["t"]), "h")
            tp = a2.assignments[0]
            await kit.c.commit("o", CommitRequest(member_id=a.member_id, generation=a2.generation,
                                                  offsets=[OffsetCommit(topic="t", partition=tp.partition,
                                                                        offset=0)]))
            other = 1 - tp.partition
            with pytest.raises(InvalidRequest):  # not its partition in this generation
                await kit.c.commit("o", CommitRequest(member_id=a.member_id, generation=a2.generation,
                                                      offsets=[OffsetCommit(topic="t", partition=other, offset=0)]))
    run(scenario)


def test_a_read_fenced_by_a_rebalance_moves_no_position(clock: Clock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A consume reads its partitions one by one; a rebalance during a later read fences the whole response, so
    the records read before it were never delivered and the member, keeping that partition, must read them again
    (CI's load run once lost 9 acknowledged records to positions moved by a discarded read)."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=2)
            await with_topic(kit, name="u")
            await kit.produce("t", ["p0"], partition=0)
            await kit.produce("t", ["p1"], partition=1)
            a = await kit.c.join("o", JoinRequest(client_id="a", topics=["t"]), "h")
            original, reads = reader.read_from, []

            async def read_from(*args: Any) -> Any:
                reads.append(args[2])
                if len(reads) == 2:  # a member of another topic joins while the second partition is read
                    await kit.c.join("o", JoinRequest(client_id="b", topics=["u"]), "h")
                return await original(*args)
            monkeypatch.setattr(reader, "read_from", read_from)
            with pytest.raises(FencedGeneration):
                await kit.ordered("o", a.member_id, a.generation)
            assert len(reads) == 2
            a2 = await kit.c.join("o", JoinRequest(member_id=a.member_id, client_id="a", topics=["t"]), "h")
            assert sorted(tp.partition for tp in a2.assignments) == [0, 1]  # it keeps both partitions
            got = await kit.ordered("o", a.member_id, a2.generation)
            assert sorted(r.value for r in got.records) == ["p0", "p1"]
    run(scenario)


def test_restart_keeps_leases_delivery_counts_and_offsets(clock: Clock) -> None:
    async def scenario() -> None:
        host = ConsumerHostDouble(clock)
        async with running(clock, host) as kit:
            await with_topic(kit)
            await kit.produce("t", [str(n) for n in range(6)])
            got = await kit.consume("g", max_records=5)
            leases = [r.lease_id or "" for r in got.records]
            await kit.c.delivery.ack("g", AckRequest(lease_ids=leases[:2]))
            await kit.c.delivery.nack("g", NackRequest(lease_ids=[leases[2]], delay_s=60))
        async with running(clock, host.restarted()) as kit:  # the broker process started again
            listing = kit.c.inflight("g", 100)
            assert [(m.offset, m.state, m.delivery_count) for m in listing.messages] == [
                (2, "waiting", 1), (3, "leased", 1), (4, "leased", 1)]
            assert (await kit.c.describe("g")).offsets[0].committed == 2
            # the held leases are still valid after the restart
            assert (await kit.c.delivery.ack("g", AckRequest(lease_ids=[leases[3]]))).acked == 1
            new = await kit.consume("g", "c2")
            assert [r.value for r in new.records] == ["5"]  # 2 waits for its delay, 4 is leased
            await kit.c.delivery.ack("g", AckRequest(lease_ids=[new.records[0].lease_id or ""]))
            clock.advance(60)
            await kit.c.tick()
            again = await kit.consume("g", "c2")
            assert sorted((r.value, r.delivery_count) for r in again.records) == [("2", 2), ("4", 2)]
    run(scenario)


def test_offset_reset_needs_force_while_members_live_and_dry_run_changes_nothing(
                                                                                 clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.produce("t", ["a", "b"])
            got = await kit.consume("g")
            await kit.c.delivery.ack("g", AckRequest(lease_ids=[r.lease_id or "" for r in got.records]))
            request = OffsetResetRequest(topic="t", to=ResetTarget.EARLIEST)
            with pytest.raises(GroupHasMembers):
                await kit.c.reset_offsets("g", request)
            plan = await kit.c.reset_offsets("g", request.model_copy(update={"dry_run": True}))
            assert [(e.current, e.target, plan.applied) for e in plan.partitions] == [(2, 0, False)]
            assert (await kit.c.describe("g")).offsets[0].committed == 2
            forced = await kit.c.reset_offsets("g", request.model_copy(update={"force": True}))
            assert forced.applied
            assert [r.value for r in (await kit.consume("g")).records] == ["a", "b"]
            clock.advance(11)  # sessions end: no force needed now
            shifted = await kit.c.reset_offsets("g", OffsetResetRequest(topic="t", to=ResetTarget.SHIFT, shift_by=1))
            assert shifted.partitions[0].target == 1
    run(scenario)


def test_bad_requests(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            with pytest.raises(GroupNotFound):
                (await kit.c.describe("nope"))
            with pytest.raises(InvalidRequest):
                await kit.c.declare("bad name!", GroupSpec())
            await kit.consume("g")
            with pytest.raises(InvalidRequest):  # shared group: no joins
                await kit.c.join("g", JoinRequest(topics=["t"]), "h")
            with pytest.raises(LeaseNotFound):
                await kit.c.delivery.ack("g", AckRequest(lease_ids=["t/0/99/1/0"]))
            with pytest.raises(InvalidRequest):
                await kit.c.delivery.ack("g", AckRequest(lease_ids=["garbage"]))
            with pytest.raises(InvalidRequest):
                await kit.consume("g", topic="__consumer_state")
            with pytest.raises(InvalidRequest):
                await kit.c.delivery.consume("g", ConsumeRequest(topic="t"), "h")
            with pytest.raises(InvalidRequest):
                await kit.c.delivery.nack("g", NackRequest(lease_ids=["t/0/0/1/0"], delay_s=10**6))
    run(scenario)


def test_backup_and_restore_round_trip(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=2)
            await kit.produce("t", ["a", "b", "c"])
            got = await kit.consume("g", max_records=2)
            await kit.c.delivery.ack("g", AckRequest(lease_ids=[r.lease_id or "" for r in got.records]))
            await kit.c.pause("g")
            backup = backup_metadata(kit.host, kit.c.table, clock())
        assert [t.name for t in backup.topics] == ["t"]  # internal topics are not in it
        async with running(clock) as kit:  # another cluster
            await with_topic(kit, partitions=1)
            await kit.produce("t", ["x", "y", "z"])
            report = await restore_metadata(GroupRouter(kit.host, kit.c), backup, forwarded=False)
            assert (report.topics_updated, report.groups_restored) == (["t"], ["g"])
            assert kit.host.topic("t").partitions == 2
            info = await kit.c.describe("g")
            assert info.paused
            assert {(o.partition, o.committed) for o in info.offsets} == {(0, 2), (1, 0)}
            again = await restore_metadata(GroupRouter(kit.host, kit.c), backup, forwarded=False)
            assert again.topics_unchanged == ["t"]
    run(scenario)


def test_groups_follow_the_leadership_of_their_state_partition(clock: Clock) -> None:
    """Losing the state partition drops its groups (requests answer NOT_COORDINATOR, a waiting long-poll too);
    leading it again at a new epoch replays them from the log: the same leases, counts and offsets."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.produce("t", ["a", "b", "c", "d"])
            got = await kit.consume("g", max_records=3)
            await kit.c.delivery.ack("g", AckRequest(lease_ids=[got.records[0].lease_id or ""]))
            before = kit.c.inflight("g", 100)
            epoch = kit.host.replicas[(STATE_TOPIC, 0)].leader_epoch
            waiting = asyncio.create_task(kit.consume("g", "c2", wait_ms=30_000, max_records=1, start_from=None))
            await kit.consume("g", "c3", max_records=1)  # takes "d": the long-poll above waits for more
            await asyncio.sleep(0)

            kit.become(7, epoch + 1)  # another broker leads the state partition now
            assert kit.c.groups == {}
            assert 'goqueue_coordinator_state_partitions{state="active"} 0.0' in scrape(kit)
            with pytest.raises(NotCoordinator):
                await waiting
            with pytest.raises(NotCoordinator):
                await kit.consume("g")
            with pytest.raises(NotCoordinator):
                await kit.c.describe("g")

            kit.become(kit.host.broker_id, epoch + 2)  # and back here: replayed from the log
            with pytest.raises(NotReady):
                await kit.c.describe("g")  # still loading
            assert await kit.c.loading.wait_loaded(10)
            after = kit.c.inflight("g", 100)
            assert [(m.offset, m.delivery_count, m.consumer_id, m.lease_id) for m in after.messages] == \
                [(m.offset, m.delivery_count, m.consumer_id, m.lease_id) for m in before.messages] + \
                [(3, 1, "c3", after.messages[-1].lease_id)]
            assert (await kit.c.describe("g")).offsets[0].committed == 1
            assert 'goqueue_coordinator_state_partitions{state="active"} 1.0' in scrape(kit)
    run(scenario)


def scrape(kit: Kit) -> str:
    return generate_latest(kit.host.metrics_registry).decode()


def test_a_deposed_coordinator_cannot_write(clock: Clock) -> None:
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.produce("t", ["a"])
            await kit.consume("g")
            index = kit.c.store.partition_for("g")
            epoch = kit.c.table.owned[index].leader_epoch
            with pytest.raises(NotCoordinator):  # a write fenced by an epoch this broker no longer leads at
                await kit.c.store.write(index, epoch + 1, [("group:g", {"x": 1})])
    run(scenario)


def test_a_lease_not_yet_written_is_never_skipped_by_a_failover(clock: Clock,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two consumes of one group interleave: A leases partition 0's records in memory and, before persisting,
    reads partition 1; meanwhile B leases partition 0's newer records and persists its cursor. Then the coordinator
    moves before A persists (A answers NOT_COORDINATOR, its consumer never sees the records). The new coordinator
    must still know A's records: as leases (redelivered after their timeout), or below `next` — never skipped."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=2)
            await kit.c.declare("g", GroupSpec(mode=GroupMode.SHARED, topics=["t"]))
            await kit.produce("t", ["a0", "a1"], partition=0)
            await kit.produce("t", ["p1"], partition=1)
            real_read_from = reader.read_from
            reading_p1, release_a = asyncio.Event(), asyncio.Event()

            async def read_from(host: Records, topic: str, partition: int, *args: Any) -> Any:
                if partition == 1 and not reading_p1.is_set():
                    reading_p1.set()
                    await release_a.wait()  # consume A holds partition 0's new leases in memory only
                return await real_read_from(host, topic, partition, *args)

            monkeypatch.setattr(reader, "read_from", read_from)
            kit.c.delivery._rotation["g"] = 0  # A reads partition 0 first, then 1
            a = asyncio.create_task(kit.consume("g", "A", max_records=10))
            await reading_p1.wait()
            await kit.produce("t", ["a2", "a3"], partition=0)
            b = await kit.consume("g", "B", max_records=10)  # persists partition 0's cursor past A's leases
            assert {r.value for r in b.records} >= {"a2", "a3"}

            epoch = kit.host.replicas[(STATE_TOPIC, 0)].leader_epoch

            kit.become(7, epoch + 1)  # the coordinator moves before A persisted
            release_a.set()
            with pytest.raises(NotCoordinator):
                await a
            kit.become(kit.host.broker_id, epoch + 2)  # a new coordinator replays the state topic
            assert await kit.c.loading.wait_loaded(10)
            clock.advance(31)  # every lease handed out before the failover expires
            await kit.c.tick()
            delivered = set()
            for _ in range(5):
                got = await kit.consume("g", "C", max_records=10, start_from=None)
                delivered |= {r.value for r in got.records}
            assert {"a0", "a1"} <= delivered, f"records leased before the failover were skipped: {delivered}"
    run(scenario)


async def delivered_then_released(kit: Kit) -> None:
    """Topic t with records a, b, c (one batch each), delivered to group g once and released: all three due."""
    await with_topic(kit)
    for value in ("a", "b", "c"):
        await kit.produce("t", [value])
    got = await kit.consume("g", max_records=3)
    await kit.c.delivery.release("g", AckRequest(lease_ids=[r.lease_id or "" for r in got.records]))


def test_a_redelivery_never_drops_a_record_a_lagging_leader_does_not_return_yet(
                                                                                clock: Clock) -> None:
    """A freshly elected partition leader's high watermark lags until its followers fetch from it: records the
    group delivered before may sit above it for a moment. Their redelivery waits; only records retention removed
    (below the leader's log start) are settled as gone."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await delivered_then_released(kit)
            plog = kit.host.replicas[("t", 0)]
            plog.high_watermark = 1  # a new leader that has not heard from its followers yet
            lagging = await kit.consume("g", "c2", max_records=3)
            assert [r.value for r in lagging.records] == ["a"]
            plog.high_watermark = 3  # the followers fetched
            caught_up = await kit.consume("g", "c2", max_records=3)
            assert [(r.value, r.delivery_count) for r in caught_up.records] == [("b", 1), ("c", 1)]
    run(scenario)


def test_records_retention_removed_are_passed_and_logged(clock: Clock,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Skipping is only for records the leader's log no longer holds (Kafka's auto.offset.reset): a waiting
    message is settled as gone, a cursor below the log start moves to it, and both say so in the log."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await delivered_then_released(kit)
            real_fetch = kit.host.fetch

            async def fetch(topic: str, index: int, offset: int, max_bytes: int) -> Any:
                if offset < 2:  # retention deleted the segments holding offsets 0 and 1
                    raise OffsetOutOfRange("gone", log_start_offset=2, log_end_offset=3)
                return await real_fetch(topic, index, offset, max_bytes)

            monkeypatch.setattr(kit.host, "fetch", fetch)
            again = await kit.consume("g", "c2", max_records=3)
            assert [r.value for r in again.records] == ["c"]
            assert kit.c.groups["g"].cursors[("t", 0)].pending == 1  # a and b settled, c leased
            fresh = await kit.consume("h", max_records=3)
            assert [r.value for r in fresh.records] == ["c"]
            messages = [r.getMessage() for r in caplog.records]
            assert messages.count("lease.record_gone") == 2
            assert "lease.records_removed_unread" in messages
            skipped = kit.c.metrics.records_skipped
            assert [skipped.labels(g, "t")._value.get() for g in ("g", "h")] == [2, 2], \
                "goqueue_consumer_records_skipped counts what each group never saw"
    run(scenario)


def test_a_long_poll_waiting_for_an_unreadable_due_message_does_not_spin(clock: Clock) -> None:
    """Messages due for redelivery that a lagging leader cannot return yet are re-checked at the remote-poll pace
    while the long-poll lasts, not every millisecond."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await delivered_then_released(kit)
            kit.host.replicas[("t", 0)].high_watermark = 1
            assert [r.value for r in (await kit.consume("g", "c2", max_records=3)).records] == ["a"]
            clock.advance(1)  # b and c have been due for a second, and still cannot be read
            fetches = 0
            real_fetch = kit.host.fetch

            async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
                nonlocal fetches
                fetches += 1
                return await real_fetch(*args, **kwargs)

            kit.host.fetch = counting_fetch  # type: ignore[method-assign]
            waited = await kit.consume("g", "c2", max_records=3, wait_ms=600)
            assert waited.records == []
            assert fetches <= 12, f"{fetches} fetches in a 0.6 s long-poll: a busy loop"
    run(scenario)


def test_a_first_bounded_read_starts_every_partition_of_the_topic(clock: Clock) -> None:
    """Issue 12: `consume --from-beginning --max 1` on a new group, then a consume without the flag, skipped every
    partition the first read did not touch (their positions were taken later, at their end)."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=4)
            for partition in range(4):
                await kit.produce("t", [f"p{partition}-{n}" for n in range(5)], partition=partition)
            first = await kit.consume("shared", max_records=1)
            await kit.c.delivery.ack("shared", AckRequest(lease_ids=[r.lease_id or "" for r in first.records]))
            rest = await kit.consume("shared", start_from=None, max_records=100)
            assert len(first.records) + len(rest.records) == 20
            a = await kit.c.join("ordered", JoinRequest(client_id="a", topics=["t"]), "h")
            one = (await kit.ordered("ordered", a.member_id, a.generation, max_records=1)).records[0]
            await kit.c.commit("ordered", CommitRequest(member_id=a.member_id, generation=a.generation, offsets=[
                OffsetCommit(topic="t", partition=one.partition, offset=one.offset + 1)]))
            await kit.c.leave("ordered", a.member_id)
            b = await kit.c.join("ordered", JoinRequest(client_id="b", topics=["t"]), "h")
            others = await kit.ordered("ordered", b.member_id, b.generation, start_from=None, max_records=100)
            assert len(others.records) == 19
    run(scenario)


def test_latest_starts_every_partition_at_its_end_when_the_group_first_reads(clock: Clock) -> None:
    """Without from-beginning a group starts at the end of every partition at once; a partition added later starts
    at its beginning (it holds nothing older than the group), and so do those a one-partition reset left out."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=2)
            await kit.produce("t", ["old-0"], partition=0)
            await kit.produce("t", ["old-1"], partition=1)
            assert (await kit.consume("g", start_from=None, max_records=1)).records == []
            await kit.produce("t", ["new-1"], partition=1)
            await kit.host.update_topic("t", 3, None)
            await kit.produce("t", ["new-2"], partition=2)
            got = await kit.consume("g", start_from=None, max_records=100)
            assert sorted(r.value for r in got.records) == ["new-1", "new-2"]
            reset = OffsetResetRequest(topic="t", partition=1, to=ResetTarget.EARLIEST)
            await kit.c.reset_offsets("fresh", reset)
            assert {o.partition: o.committed for o in (await kit.c.describe("fresh")).offsets} == {0: 1, 1: 0, 2: 1}
    run(scenario)


def test_a_consumer_that_left_is_not_brought_back_by_the_long_poll_it_abandoned(
                                                                                clock: Clock) -> None:
    """Ctrl-C on `goqueue-cli consume` closes the connection and leaves, but the broker's long-poll of that request
    runs on: woken by the leave (or a record) it made the consumer a member again and leased it records."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            abandoned = asyncio.create_task(kit.consume("g", "gone", wait_ms=5_000))

            async def polling() -> bool:
                return "g" in kit.c.groups and "gone" in kit.c.groups["g"].members

            await async_wait_until(polling, 10, interval_s=0.01)
            await kit.c.leave("g", "gone")
            await kit.produce("t", ["after"])
            assert (await abandoned).records == []
            assert (await kit.c.describe("g")).members == []
            got = await kit.consume("g", "other")
            assert [(r.value, r.delivery_count) for r in got.records] == [("after", 1)]
    run(scenario)


def test_an_ordered_consume_sent_again_with_its_positions_returns_the_same_records(
                                                                                  clock: Clock) -> None:
    """A lost answer (issue 12, item 5): the member's client-held positions make the resend read the same records;
    without them the broker's read position, moved by the lost answer, skips them."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit, partitions=2)
            await kit.produce("t", ["a0", "a1", "a2"], partition=0)
            await kit.produce("t", ["b0", "b1"], partition=1)
            a = await kit.c.join("o", JoinRequest(client_id="a", topics=["t"]), "h")

            lost = await kit.ordered("o", a.member_id, a.generation, max_records=10, positions=[])
            again = await kit.ordered("o", a.member_id, a.generation, max_records=10, positions=[])
            assert sorted(r.value or "" for r in again.records) == sorted(r.value or "" for r in lost.records)
            assert sorted(r.value or "" for r in again.records) == ["a0", "a1", "a2", "b0", "b1"]
            assert {(p.topic, p.partition, p.offset) for p in again.positions} == {("t", 0, 3), ("t", 1, 2)}

            await kit.produce("t", ["a3"], partition=0)
            after = await kit.ordered("o", a.member_id, a.generation, max_records=10,
                                      positions=[p.model_dump() for p in again.positions])
            assert [r.value for r in after.records] == ["a3"]
            assert {(p.partition, p.offset) for p in after.positions} == {(0, 4), (1, 2)}

            # Without positions, the broker's read position (moved by every answer above) decides: nothing new.
            assert (await kit.ordered("o", a.member_id, a.generation, max_records=10)).records == []
    run(scenario)


# -- what the coordinator relies on its host for (port.py), checked on the double ---------------------------------


def test_leadership_moving_away_during_a_write_fences_it(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state partition's leadership moves while an ack's state write is on its way: the write is refused
    (NOT_LEADER, never forwarded to the new leader), the ack answers NOT_COORDINATOR (retriable: nothing was
    acknowledged), and the deposed coordinator drops the group and writes nothing more."""
    async def scenario() -> None:
        async with running(clock) as kit:
            await with_topic(kit)
            await kit.produce("t", ["a"])
            got = await kit.consume("g")
            state = kit.host.replicas[(STATE_TOPIC, 0)]
            epoch, written = state.leader_epoch, state.log_end_offset
            real_append = kit.host.append_local

            async def moving(topic: str, index: int, leader_epoch: int, records: Any) -> int:
                kit.become(7, epoch + 1)  # the controller elects another leader meanwhile
                return await real_append(topic, index, leader_epoch, records)

            monkeypatch.setattr(kit.host, "append_local", moving)
            with pytest.raises(NotCoordinator):
                await kit.c.delivery.ack("g", AckRequest(lease_ids=[got.records[0].lease_id or ""]))
            assert state.log_end_offset == written, "a deposed coordinator appended to its successor's log"
            assert kit.c.groups == {}
            with pytest.raises(NotCoordinator):
                await kit.consume("g")
    run(scenario)


def test_role_changes_load_and_drop_groups_and_stop_unsubscribes(clock: Clock) -> None:
    """A coordinator that starts while another broker leads the state partition holds none of its groups; when the
    leadership comes here it loads them from the log; a stopped coordinator hears of no more role changes."""
    async def scenario() -> None:
        host = ConsumerHostDouble(clock)
        async with running(clock, host) as kit:
            await with_topic(kit)
            await kit.produce("t", ["a", "b"])
            await kit.consume("g", max_records=1)
            epoch = host.replicas[(STATE_TOPIC, 0)].leader_epoch
            kit.become(7, epoch + 1)
        restarted = host.restarted()
        async with running(clock, restarted) as kit:  # started as a follower of the state partition
            assert kit.c.groups == {}
            with pytest.raises(NotCoordinator):
                await kit.c.describe("g")
            kit.become(restarted.broker_id, epoch + 2)
            assert await kit.c.loading.wait_loaded(10)
            assert [(m.offset, m.consumer_id) for m in kit.c.inflight("g", 10).messages] == [(0, "c1")]
        assert restarted._listeners == [], "a stopped coordinator still listens to role changes"
    run(scenario)


def test_pause_all_is_the_hosts_cluster_flag(clock: Clock) -> None:
    """Pause-all is cluster metadata: set through one coordinator's host it pauses every coordinator's groups, and
    another coordinator of the same cluster sees it; resume-all lifts it and every per-group pause."""
    async def scenario() -> None:
        host = ConsumerHostDouble(clock)
        async with running(clock, host) as kit:
            await with_topic(kit)
            await kit.c.declare("g", GroupSpec(mode=GroupMode.SHARED, topics=["t"]))  # starts at latest
            await kit.produce("t", ["m"])
            await kit.c.pause("g")
            answer = await kit.c.pause(None)
            assert (answer.paused, answer.all, host.paused_all) == (True, True, True)
        async with running(clock, host.restarted()) as kit:
            assert kit.host.paused_all, "the flag lives in the cluster, not in one coordinator"
            assert (await kit.consume("g")).paused
            await kit.c.resume(None)
            assert not kit.host.paused_all
            assert not (await kit.c.describe("g")).paused, "resume --all lifts the per-group pause too"
            assert [r.value for r in (await kit.consume("g")).records] == ["m"]
    run(scenario)
