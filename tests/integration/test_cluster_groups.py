"""Consumer groups on three real brokers (127.0.0.2-4): the coordinator of a group is the leader of its
`__consumer_state` partition, every broker forwards group requests to it, and its groups survive its SIGKILL.

Delivery histories are checked against the broker's own lease clock: a message is delivered again only after its
previous lease expired, with a delivery count one higher (the new coordinator knew the lease), and every produced
message is acked. Waits are `wait_until` with deadlines; nothing sleeps and then asserts.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from cluster_process import LocalCluster, wait_until

from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.config import OffsetReset
from goqueue.consumers.ownership import state_partition_for
from goqueue.errors import FencedGeneration, GoQueueError
from goqueue.models import (
    ConsumeRequest,
    DeliveredRecord,
    GroupConfig,
    GroupMode,
    GroupOffset,
    GroupSpec,
    InflightList,
    OffsetCommit,
    OffsetResetRequest,
    ProduceRecord,
    ResetTarget,
    TopicCreate,
)

pytestmark = pytest.mark.integration

STATE_TOPIC = "__consumer_state"
STATE_PARTITIONS = 3
VISIBILITY_S = 4.0
CLUSTER_ENV = {"GOQUEUE_CONSUMERS_STATEPARTITIONS": str(STATE_PARTITIONS),
               "GOQUEUE_CONSUMERS_VISIBILITYTIMEOUT": f"{VISIBILITY_S:g}s"}


def stop_cleanly(cluster: LocalCluster) -> None:
    for broker in cluster.brokers:
        if broker.running:
            broker.stop()
    for broker in cluster.brokers:
        assert "Traceback" not in broker.log_text(), broker.log_text()[-3000:]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path, env=CLUSTER_ENV).start()
    try:
        yield running
    finally:
        stop_cleanly(running)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the tests that kill nothing (each uses its own topics and groups)."""
    running = LocalCluster(tmp_path_factory.mktemp("groups-cluster"), env=CLUSTER_ENV).start()
    try:
        yield running
    finally:
        stop_cleanly(running)


def coordinator_of(cluster: LocalCluster, group: str, via: int) -> int | None:
    leader: int | None = cluster.leader_of(STATE_TOPIC, state_partition_for(group, STATE_PARTITIONS), via)
    return leader


def client(cluster: LocalCluster, broker_id: int) -> GoQueueClient:
    return GoQueueClient(cluster.url(broker_id), timeout_s=30, retries=8)


def create_topic(cluster: LocalCluster, name: str, partitions: int) -> None:
    with client(cluster, 0) as http:
        http.create_topic(TopicCreate(name=name, partitions=partitions, replication_factor=3))


# -- shared mode across brokers, and the coordinator's SIGKILL -------------------------------------------------------


@dataclass
class Delivery:
    value: str
    count: int
    expires_ms: int
    lease_id: str


@dataclass
class Ledger:
    """What consumers saw: every delivery, and the lease ids whose ack was confirmed (with when)."""

    deliveries: list[Delivery] = field(default_factory=list)
    acked: dict[str, float] = field(default_factory=dict)  # lease id -> monotonic time the ack returned
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self, records: list[DeliveredRecord]) -> None:
        with self.lock:
            self.deliveries.extend(Delivery(r.value or "", r.delivery_count, r.lease_expires_at_ms or 0,
                                            r.lease_id or "") for r in records)

    def values_acked(self) -> set[str]:
        with self.lock:
            by_lease = {d.lease_id: d.value for d in self.deliveries}
            return {by_lease[lease] for lease in self.acked}


class Consumer(threading.Thread):
    """A shared-group consumer talking to its own broker; moves to another live broker when its own is gone."""

    def __init__(self, cluster: LocalCluster, ledger: Ledger, name: str, broker_id: int) -> None:
        super().__init__(daemon=True, name=name)
        self.cluster, self.ledger, self.consumer_id, self.broker_id = cluster, ledger, name, broker_id
        self.stopping = threading.Event()
        self.unconfirmed: list[str] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            if not self.cluster.brokers[self.broker_id].running:
                live = self.cluster.running()
                if not live:
                    return  # the test is tearing the cluster down
                self.broker_id = live[0]
            try:
                with client(self.cluster, self.broker_id) as http:
                    self._consume(http)
            except GoQueueError as exc:
                if not exc.retriable:
                    self.ledger.errors.append(f"{self.consumer_id}: {exc.code} {exc.message}")
                time.sleep(0.1)
            except Exception:  # reported by the test instead of dying silently in this thread
                self.ledger.errors.append(traceback.format_exc())
                return

    def _consume(self, http: GoQueueClient) -> None:
        while not self.stopping.is_set():
            if self.unconfirmed:  # an ack whose answer was lost (it may have been applied): acks are idempotent
                http.ack("work", self.unconfirmed)
                with self.ledger.lock:
                    self.ledger.acked.update(dict.fromkeys(self.unconfirmed, time.monotonic()))
                self.unconfirmed = []
            got = http.consume("work", ConsumeRequest(consumer_id=self.consumer_id, topic="jobs",
                                                      start_from=OffsetReset.EARLIEST, max_records=20, wait_ms=500))
            self.ledger.delivered(got.records)
            self.unconfirmed = [r.lease_id or "" for r in got.records]


def check_history(ledger: Ledger, produced: set[str], abandoned: dict[str, Delivery]) -> None:
    """Every message acked; redeliveries only after the previous lease expired, each counting one more delivery."""
    assert ledger.values_acked() == produced, f"lost: {sorted(produced - ledger.values_acked())[:10]}"
    by_value: dict[str, list[Delivery]] = {}
    for delivery in [*abandoned.values(), *ledger.deliveries]:
        by_value.setdefault(delivery.value, []).append(delivery)
    first_seen_late = 0
    for value, history in by_value.items():
        history.sort(key=lambda d: d.count)
        first_seen_late += history[0].count > 1
        for before, after in itertools.pairwise(history):
            assert after.count == before.count + 1, (value, history)
            leased_at_ms = after.expires_ms - int(VISIBILITY_S * 1000)
            assert leased_at_ms >= before.expires_ms, f"{value} delivered again before its lease expired: {history}"
    # A message first seen with a count above 1 was leased by a consume whose answer died with the coordinator:
    # at most the consumes in flight at the kill (3 consumers x 20 records).
    assert first_seen_late <= 60, first_seen_late


def diagnose(cluster: LocalCluster, via: int, ledger: Ledger, produced: set[str]) -> str:
    missing = sorted(produced - ledger.values_acked())
    with ledger.lock:
        seen = {d.value: d for d in ledger.deliveries if d.value in set(missing[:5])}
    with client(cluster, via) as http:
        inflight = http.inflight("work")
        offsets = http.describe_group("work").offsets
    return (f"{len(missing)} never acked, e.g. {missing[:5]}; their deliveries {seen}; errors {ledger.errors[:3]}; "
            f"inflight {inflight.total}: {inflight.messages[:5]}; offsets {offsets}")


@dataclass
class Untouched:
    """A group nobody consumes while its coordinator dies: its leases and offsets must come back exactly."""

    name: str
    inflight: InflightList
    offsets: list[GroupOffset]


def untouched_group_beside(cluster: LocalCluster, group: str, via: int) -> Untouched:
    """A group in the same state partition as `group`, holding 8 leases (long visibility timeout) and 4 acks."""
    partition = state_partition_for(group, STATE_PARTITIONS)
    name = next(f"audit-{n}" for n in range(1000) if state_partition_for(f"audit-{n}", STATE_PARTITIONS) == partition)
    with client(cluster, via) as http:
        http.declare_group(name, GroupSpec(mode=GroupMode.SHARED, config=GroupConfig(visibility_timeout_s=300)))
        taken = http.consume(name, ConsumeRequest(consumer_id="auditor", topic="jobs", start_from=OffsetReset.EARLIEST,
                                                  max_records=12, wait_ms=2000))
        assert len(taken.records) == 12
        http.ack(name, [r.lease_id or "" for r in taken.records[:4]])
        return Untouched(name, http.inflight(name), http.describe_group(name).offsets)


def test_shared_group_across_brokers_survives_the_coordinator_sigkill(cluster: LocalCluster) -> None:
    create_topic(cluster, "jobs", partitions=3)
    produced = {f"job-{n}" for n in range(600)}
    with client(cluster, 1) as http:
        for start in range(0, 600, 100):
            http.produce("jobs", [ProduceRecord(key=f"k{n}", value=f"job-{n}") for n in range(start, start + 100)])
    victim = coordinator_of(cluster, "work", via=0)
    assert victim is not None
    survivor = next(i for i in range(3) if i != victim)
    audit = untouched_group_beside(cluster, "work", via=survivor)

    ledger = Ledger()
    consumers = [Consumer(cluster, ledger, f"c{i}", i) for i in range(3)]  # each on its own broker
    for consumer in consumers:
        consumer.start()
    wait_until(lambda: len(ledger.acked) >= 150, 60, "a quarter of the messages acked")
    with client(cluster, survivor) as http:  # a consumer that takes messages and dies with the coordinator
        doomed = http.consume("work", ConsumeRequest(consumer_id="doomed", topic="jobs", max_records=10,
                                                      wait_ms=2000))
    abandoned = {r.value or "": Delivery(r.value or "", r.delivery_count, r.lease_expires_at_ms or 0,
                                         r.lease_id or "") for r in doomed.records}
    assert abandoned
    with ledger.lock:
        acked_before_kill = list(ledger.acked)
    cluster.brokers[victim].kill()

    wait_until(lambda: coordinator_of(cluster, "work", via=survivor) not in (None, victim), 30,
               "a new coordinator for the group")
    with client(cluster, survivor) as http:
        wait_until(lambda: http.inflight(audit.name).messages == audit.inflight.messages, 30, "audit leases back")
        wait_until(lambda: http.describe_group(audit.name).offsets == audit.offsets, 30, "audit offsets back")
        again = http.ack("work", acked_before_kill)  # acks confirmed before the kill stay acked
        assert (again.acked, again.already_done) == (0, len(acked_before_kill)), again
    try:
        wait_until(lambda: ledger.values_acked() == produced, 120, "every message acked after the failover")
    except AssertionError:
        raise AssertionError(diagnose(cluster, survivor, ledger, produced)) from None
    for consumer in consumers:
        consumer.stopping.set()
    for consumer in consumers:
        consumer.join(30)
    assert not ledger.errors, ledger.errors[:5]
    check_history(ledger, produced, abandoned)
    redelivered = {d.value: d.count for d in ledger.deliveries if d.value in abandoned}
    assert all(redelivered[v] == 2 for v in abandoned), redelivered  # the doomed consumer's leases came back once
    check_failback(cluster, victim, survivor, audit)


def check_failback(cluster: LocalCluster, victim: int, survivor: int, audit: Untouched) -> None:
    """The killed broker comes back, catches up and takes its preferred leadership back: the same group state."""
    with client(cluster, survivor) as http:
        wait_until(lambda: sum(o.lag or 0 for o in http.describe_group("work").offsets) == 0, 30, "no lag")
        settled = http.describe_group("work").offsets
    cluster.restart(victim)
    wait_until(lambda: coordinator_of(cluster, "work", via=survivor) == victim, 60, "the preferred coordinator back")
    with client(cluster, victim) as http:
        assert http.describe_group("work").offsets == settled
        assert http.describe_group(audit.name).offsets == audit.offsets
        assert http.inflight(audit.name).messages == audit.inflight.messages


# -- ordered mode across brokers, cluster-wide read-outs, gRPC through a non-coordinator ------------------------------


def test_ordered_group_rebalances_with_members_on_different_brokers(shared_cluster: LocalCluster) -> None:
    cluster = shared_cluster
    create_topic(cluster, "events", partitions=4)
    with client(cluster, 0) as on0, client(cluster, 1) as on1, client(cluster, 2) as on2:
        on0.produce("events", [ProduceRecord(value=f"e{n}", partition=n % 4) for n in range(40)])
        a = on0.join_group("ledger", ["events"], client_id="a")
        assert len(a.assignments) == 4
        b = on1.join_group("ledger", ["events"], client_id="b")
        assert on2.heartbeat("ledger", a.member_id, a.generation).rejoin  # b's join started a new generation
        a = on0.join_group("ledger", ["events"], member_id=a.member_id, client_id="a")
        mine = {tp.partition for tp in a.assignments}
        theirs = {tp.partition for tp in b.assignments}
        assert a.generation == b.generation
        assert mine | theirs == {0, 1, 2, 3}
        assert not mine & theirs
        with pytest.raises(FencedGeneration):  # a's first generation is over, whichever broker it asks
            on2.commit("ledger", [OffsetCommit(topic="events", partition=min(mine), offset=1)],
                       member_id=a.member_id, generation=a.generation - 1)

        for member, via, owned in ((a, on0, mine), (b, on1, theirs)):
            got = via.consume("ledger", ConsumeRequest(member_id=member.member_id, generation=member.generation,
                                                       start_from=OffsetReset.EARLIEST, max_records=100, wait_ms=2000))
            assert {r.partition for r in got.records} == owned
            assert len(got.records) == 10 * len(owned)
            on2.commit("ledger", [OffsetCommit(topic="events", partition=p, offset=10) for p in owned],
                       member_id=member.member_id, generation=member.generation)

        on2.leave_group("ledger", b.member_id)
        assert on1.heartbeat("ledger", a.member_id, a.generation).rejoin
        a = on1.join_group("ledger", ["events"], member_id=a.member_id, client_id="a")
        assert sorted(tp.partition for tp in a.assignments) == [0, 1, 2, 3]
        on0.produce("events", [ProduceRecord(value=f"late{n}", partition=n % 4) for n in range(8)])
        got = on2.consume("ledger", ConsumeRequest(member_id=a.member_id, generation=a.generation, max_records=100,
                                                   wait_ms=2000))
        assert sorted(r.value or "" for r in got.records) == sorted(f"late{n}" for n in range(8))  # from commits
        described = on1.describe_group("ledger")
        assert ([m.member_id for m in described.members], described.state.value) == ([a.member_id], "Stable")
        assert described.coordinator == coordinator_of(cluster, "ledger", via=1)  # whoever was asked
        assert [o.committed for o in described.offsets] == [10] * 4


def test_cluster_wide_read_outs_and_pause_all(shared_cluster: LocalCluster) -> None:
    cluster = shared_cluster
    create_topic(cluster, "audit-log", partitions=2)
    names = [f"reader-{n}" for n in range(9)]
    coordinators = {coordinator_of(cluster, name, via=0) for name in names}
    assert len(coordinators) > 1, "the groups are spread over several coordinators"
    with client(cluster, 0) as on0, client(cluster, 2) as on2:
        on0.produce("audit-log", [ProduceRecord(value=f"a{n}", partition=n % 2) for n in range(10)])
        for name in names:
            on0.declare_group(name, GroupSpec(mode=GroupMode.SHARED, topics=["audit-log"]))
            on0.reset_offsets(name, OffsetResetRequest(topic="audit-log", to=ResetTarget.EARLIEST))
            got = on2.consume(name, ConsumeRequest(consumer_id="x", topic="audit-log", max_records=1, wait_ms=2000))
            assert len(got.records) == 1
        for via in (on0, on2):
            assert set(names) <= {g.name for g in via.list_groups()}
            inflight = via.inflight()
            assert {m.group for m in inflight.messages} >= set(names)
            assert {g.name for g in via.backup_metadata().groups} >= set(names)
        paused = on2.pause()
        assert set(names) <= set(paused.groups)
        assert all(on0.describe_group(name).paused for name in names)
        quiet = on0.consume(names[0], ConsumeRequest(consumer_id="y", topic="audit-log", wait_ms=100))
        assert (quiet.paused, quiet.records) == (True, [])
        on2.pause(names[1])
        on0.resume()  # resume --all also lifts per-group pauses, on every coordinator
        assert not any(on2.describe_group(name).paused for name in names)


def test_grpc_stream_through_a_broker_that_does_not_coordinate(shared_cluster: LocalCluster) -> None:
    cluster = shared_cluster
    create_topic(cluster, "stream-jobs", partitions=3)
    group = "streamers"
    with client(cluster, 0) as http:
        http.produce("stream-jobs", [ProduceRecord(value=f"s{n}") for n in range(30)])
    coordinator = coordinator_of(cluster, group, via=0)
    other = next(i for i in range(3) if i != coordinator)

    async def scenario() -> list[str]:
        values: list[str] = []
        async with GrpcClient(cluster.brokers[other].grpc_target) as grpc_client:
            request = ConsumeRequest(consumer_id="g1", topic="stream-jobs", start_from=OffsetReset.EARLIEST)
            async with grpc_client.consume_stream(group, request, prefetch=8) as stream:
                async for record in stream:
                    values.append(record.value or "")
                    await grpc_client.ack(group, [record.lease_id or ""])
                    if len(values) == 30:
                        break
        return values

    assert sorted(anyio.run(scenario)) == sorted(f"s{n}" for n in range(30))
    with client(cluster, coordinator or 0) as http:
        wait_until(lambda: http.inflight(group).total == 0, 10, "every streamed message acked")
