"""Three real brokers on 127.0.0.2-4: membership, replication, forwarding, failover and recovery, checked against a
history of acknowledged writes."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster_process import History, LocalCluster, Producer, consume_all, wait_until

from goqueue.client.http import GoQueueClient
from goqueue.config import OffsetReset
from goqueue.models import ConsumeRequest, GroupConfig, GroupSpec, ProduceRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path).start()
    try:
        yield running
    finally:
        for broker in running.brokers:
            if broker.running:
                broker.stop()
        for broker in running.brokers:
            assert "Traceback" not in broker.log_text(), broker.log_text()[-3000:]


def create_topic(cluster: LocalCluster, name: str, partitions: int = 3, rf: int = 3) -> None:
    with cluster.client() as http:
        response = http.post("/v1/topics", json={"name": name, "partitions": partitions, "replicationFactor": rf})
        assert response.status_code == 201, response.text


def in_sync(cluster: LocalCluster, topic: str, partitions: int, size: int = 3, via: int | None = None) -> bool:
    return all(len(cluster.partition(topic, p, via)["isr"]) == size for p in range(partitions))


def leadership(cluster: LocalCluster, topic: str, via: int) -> tuple[int | None, int]:
    """(leader, leader epoch) of `topic`/0 as broker `via` knows it."""
    with cluster.client(via) as http:
        (state,) = [p for p in http.get("/v1/replication/status").json()["partitions"]
                    if (p["topic"], p["partition"]) == (topic, 0)]
    return state["leader"], state["leaderEpoch"]


def read_while_leading(cluster: LocalCluster, topic: str, reader: int, timeout_s: float = 60) -> list[str]:
    """Every value of `topic`/0, read through broker `reader` while it leads the partition.

    A read through a broker is forwarded to the partition's leader, so reading "through" a repaired replica proves
    nothing about its copy unless it leads. Leadership is moved to it (transfer-leadership off whichever broker
    leads instead), and the same leader epoch before and after the read shows it led throughout (the controller
    may hand leadership back to a preferred replica at any time; then it is moved again and read again)."""
    deadline = time.monotonic() + timeout_s
    with cluster.client(reader) as http:
        while time.monotonic() < deadline:
            leader, epoch = leadership(cluster, topic, reader)
            if leader != reader:
                # A transfer moves leadership only to a live in-sync replica: right after an election the reader may
                # not be back in the new leader's ISR yet (seen in CI), and then nothing moves; ask again shortly.
                moved = leader is not None and http.post(
                    f"/v1/admin/cluster/brokers/{leader}/transfer-leadership").json().get("done") is True
                if moved or leader is None:
                    seen = (leader, epoch)
                    wait_until(lambda seen=seen: leadership(cluster, topic, reader) != seen, 30, "leadership moved")
                else:
                    time.sleep(0.2)
                continue
            values = [v for _, v in consume_all(http, topic, 1)[0]]
            if leadership(cluster, topic, reader) == (reader, epoch):
                return values
    raise AssertionError(f"{topic}/0 could not be read while broker {reader} led it within {timeout_s:.0f}s")


def test_brokers_form_a_cluster_and_replicate(cluster: LocalCluster) -> None:
    with cluster.client(0) as http:
        # Ready means a quorum; the third broker's Raft link may come up a moment later (seen under load).
        wait_until(lambda: http.get("/v1/cluster/status").json()["liveBrokers"] == 3, 30,
                   message="all three brokers live in broker 0's view")
        status = http.get("/v1/cluster/status").json()
        assert (status["brokers"], status["liveBrokers"], status["mode"]) == (3, 3, "cluster")
        assert status["leader"]["leader"] in {0, 1, 2}
        members = http.get("/v1/cluster/members").json()
        assert [m["brokerId"] for m in members] == [0, 1, 2]
    create_topic(cluster, "replicated")
    leaders = {cluster.leader_of("replicated", p) for p in range(3)}
    assert leaders == {0, 1, 2}, "leadership is spread over the brokers"
    # Produce through broker 0 to every partition (two of three are forwarded), read through broker 2.
    with cluster.client(0) as http:
        for p in range(3):
            body = {"partition": p, "records": [{"value": f"p{p}-{i}"} for i in range(5)]}
            assert http.post("/v1/topics/replicated/records", json=body).status_code == 200
    with cluster.client(2) as http:
        consumed = consume_all(http, "replicated", 3)
        assert [v for _, v in consumed[1]] == [f"p1-{i}" for i in range(5)]
        replication = http.get("/v1/replication/status").json()
        assert replication["underReplicated"] == 0
    # Every broker holds every partition's records on disk.
    wait_until(lambda: all(
        cluster.partition("replicated", p, via)["endOffset"] == 5 for p in range(3) for via in range(3)
        if cluster.leader_of("replicated", p) == via), 10, "replicas caught up")
    for broker in cluster.brokers:
        for p in range(3):
            log_dir = broker.data_dir / f"replicated-{p}"
            assert sum(f.stat().st_size for f in log_dir.glob("*.log")) > 0


def test_kill_the_leader_under_load_loses_no_acknowledged_record(cluster: LocalCluster) -> None:
    create_topic(cluster, "orders", partitions=3)
    history = History()
    producers = [Producer(cluster, "orders", history, f"w{i}") for i in range(3)]
    for producer in producers:
        producer.start()
    wait_until(lambda: history.count() > 300, 30, "first acknowledged writes")
    victim = cluster.leader_of("orders", 0)
    assert victim is not None
    before = history.count()
    killed_at = time.monotonic()
    cluster.brokers[victim].kill()
    survivor = next(i for i in range(3) if i != victim)
    wait_until(lambda: cluster.leader_of("orders", 0, survivor) not in (None, victim), 15, "a new leader")
    wait_until(lambda: history.count() > before + 200, 30, "writes acknowledged after failover")
    failover_s = time.monotonic() - killed_at
    cluster.restart(victim)
    wait_until(lambda: in_sync(cluster, "orders", 3, via=survivor), 60, "the restarted broker back in every ISR")
    for producer in producers:
        producer.stopping.set()
    for producer in producers:
        producer.join(30)
    assert not history.errors, history.errors[:3]
    wait_until(lambda: cluster.leader_of("orders", 0, survivor) == 0, 30, "the preferred leader restored")
    with cluster.client(survivor) as http:
        history.check(consume_all(http, "orders", 3), exactly_once=True)
    assert failover_s < 30


MOVES = 25  # before the fix about 1 read in 7 missed its record (6 of 40 in one run): 25 moves miss it ~98 %


def test_a_record_acknowledged_before_a_leadership_move_is_read_at_once_from_the_new_leader(
        cluster: LocalCluster) -> None:
    """An acks=all record, then leadership moved off its leader, then a read of that offset at once through another
    broker: the new leader must not answer from the high watermark it last heard as a follower (CI's chart-upgrade
    test lost sight of the last acknowledged batch this way; `Broker._await_settled`)."""
    create_topic(cluster, "moving", partitions=1)
    missed = []
    with GoQueueClient([cluster.url(i) for i in range(3)]) as client:
        for n in range(MOVES):
            wait_until(lambda: in_sync(cluster, "moving", 1), 30, "every replica in sync (a move needs a successor)")
            leader = cluster.leader_of("moving", 0)
            assert leader is not None
            offset = client.produce("moving", [ProduceRecord(value=f"r{n}")], acks="all", partition=0).offsets[0].offset
            transfer = client.transfer_leadership(leader)  # every partition it leads; only moving/0 matters here
            stayed = [reason for reason in transfer.reasons if reason.startswith("moving/0:")]
            assert not stayed, f"moving/0 stayed on broker {leader}: {stayed}"
            with cluster.client((leader + 1) % 3) as http:
                deadline = time.monotonic() + 15
                while True:
                    body = http.get("/v1/topics/moving/partitions/0/records",
                                    params={"offset": offset, "maxRecords": 10}).json()
                    if not body.get("error", {}).get("retriable") or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
            if f"r{n}" not in [r["value"] for r in body.get("records", [])]:
                missed.append((n, offset, body.get("highWatermark"), body.get("error")))
    assert not missed, f"acknowledged records not readable right after a leadership move: {missed}"


def test_sigstop_leader_no_split_brain(cluster: LocalCluster) -> None:
    create_topic(cluster, "frozen", partitions=1)
    history = History()
    producer = Producer(cluster, "frozen", history, "s")
    producer.start()
    wait_until(lambda: history.count() > 100, 30, "first writes")
    victim = cluster.leader_of("frozen", 0)
    assert victim is not None
    os.kill(cluster.brokers[victim].pid, signal.SIGSTOP)
    try:
        survivor = next(i for i in range(3) if i != victim)
        wait_until(lambda: cluster.leader_of("frozen", 0, survivor) not in (None, victim), 20, "a new leader")
        before = history.count()
        wait_until(lambda: history.count() > before + 100, 30, "writes to the new leader")
    finally:
        os.kill(cluster.brokers[victim].pid, signal.SIGCONT)
    # The old leader wakes up believing it leads: it must not acknowledge anything the new leader lacks.
    wait_until(lambda: in_sync(cluster, "frozen", 1, via=survivor), 60, "the old leader rejoined as follower")
    producer.stopping.set()
    producer.join(30)
    with cluster.client(survivor) as http:
        history.check(consume_all(http, "frozen", 1), exactly_once=True)


def group_view(client: GoQueueClient) -> tuple[object, ...]:
    """What must survive a full restart: committed offsets and leases (ids, offsets, delivery counts)."""
    info = client.describe_group("keeper")
    leases = sorted((m.topic, m.partition, m.offset, m.lease_id, m.delivery_count)
                    for m in client.inflight("keeper").messages)
    offsets = sorted((o.topic, o.partition, o.committed) for o in info.offsets)
    return tuple(offsets), tuple(leases)


def test_full_restart_keeps_metadata_data_offsets_and_leases(cluster: LocalCluster) -> None:
    create_topic(cluster, "durable", partitions=2)
    with cluster.client(1) as http:
        for p in range(2):
            body = {"partition": p, "records": [{"value": f"{p}-{i}"} for i in range(20)]}
            assert http.post("/v1/topics/durable/records", json=body).status_code == 200
        before_members = http.get("/v1/cluster/members").json()
        before = consume_all(http, "durable", 2)
    with GoQueueClient(cluster.url(0)) as client:
        client.declare_group("keeper", GroupSpec(topics=["durable"], config=GroupConfig(
            visibility_timeout_s=3600, auto_offset_reset=OffsetReset.EARLIEST)))
        got = client.consume("keeper", ConsumeRequest(consumer_id="c1", topic="durable", max_records=15,
                                                      start_from=OffsetReset.EARLIEST))
        client.ack("keeper", [r.lease_id or "" for r in got.records[:10]])  # five stay leased
        groups_before = group_view(client)
    assert len(groups_before[1]) == 5
    for broker in cluster.brokers:
        broker.kill()
    cluster.start()
    with cluster.client(2) as http:
        assert [m["brokerId"] for m in http.get("/v1/cluster/members").json()] == \
            [m["brokerId"] for m in before_members]
        wait_until(lambda: all(cluster.leader_of("durable", p) is not None for p in range(2)), 30, "leaders")
        # A restarted leader opens at its checkpointed high watermark (written every 5 s) and exposes the rest of
        # its log once its in-sync followers have fetched it again: every record comes back, after a moment.
        wait_until(lambda: consume_all(http, "durable", 2) == before, 30, "every record readable again")
    with GoQueueClient(cluster.url(2)) as client:
        wait_until(lambda: group_view(client) == groups_before, 30, "offsets and leases as before the restart")


def test_acks_all_needs_min_insync_replicas(cluster: LocalCluster) -> None:
    with cluster.client() as http:
        body = {"name": "strict", "partitions": 1, "replicationFactor": 3, "config": {"minInsyncReplicas": 3}}
        assert http.post("/v1/topics", json=body).status_code == 201
    leader = cluster.leader_of("strict", 0)
    assert leader is not None
    follower = next(i for i in range(3) if i != leader)
    cluster.brokers[follower].kill()
    with httpx.Client(base_url=cluster.url(leader), timeout=60) as http:
        # The ISR shrinks to two once the dead follower stops fetching: acks=all is refused, acks=1 still works.
        wait_until(lambda: http.post("/v1/topics/strict/records", json={"records": [{"value": "x"}]})
                   .json().get("error", {}).get("code") == "NOT_ENOUGH_REPLICAS", 60, "NOT_ENOUGH_REPLICAS")
        one = http.post("/v1/topics/strict/records", json={"acks": "1", "records": [{"value": "y"}]})
        assert one.status_code == 200, one.text


def test_operator_admin_api(cluster: LocalCluster) -> None:
    create_topic(cluster, "admin", partitions=3)
    admin = "/v1/admin/cluster"
    with cluster.client(0) as http:
        wait_until(lambda: in_sync(cluster, "admin", 3), 30, "full ISRs")
        wait_until(lambda: http.get(f"{admin}/brokers/1/pre-restart-check").json() == {
            "brokerId": 1, "safe": True, "reasons": []}, 30, "a healthy cluster is safe to restart")
        assert http.get(f"{admin}/brokers/1/caught-up").json()["caughtUp"] is True
        missing = http.get(f"{admin}/brokers/7/caught-up")
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "BROKER_NOT_FOUND")

        # Leadership transfer: broker 1 leads nothing afterwards, and the partitions stay online.
        moved = http.post(f"{admin}/brokers/1/transfer-leadership").json()
        assert moved["done"] is True
        wait_until(lambda: http.get(f"{admin}/brokers/1/replicas").json()["leaders"] == 0, 10, "no leaderships")

        # With broker 2 down, ISRs are {0,1}: restarting 1 would leave one in-sync replica (< min.insync 2).
        cluster.brokers[2].kill()
        wait_until(lambda: not http.get(f"{admin}/brokers/1/pre-restart-check").json()["safe"], 30, "unsafe")
        reasons = http.get(f"{admin}/brokers/1/pre-restart-check").json()["reasons"]
        assert any("min.insync.replicas" in r for r in reasons) or any("quorum" in r for r in reasons)
        assert http.get(f"{admin}/brokers/2/caught-up").json()["caughtUp"] is False
        cluster.restart(2)
        wait_until(lambda: http.get(f"{admin}/brokers/2/caught-up").json()["caughtUp"], 60, "broker 2 caught up")

    # Drain broker 2: replicas of a replication-factor-2 topic move to the broker without a copy; those of
    # replication-factor-3 topics cannot move anywhere in a 3-broker cluster, and the answer says so.
    with cluster.client(0) as http:
        body = {"name": "movable", "partitions": 3, "replicationFactor": 2}
        # Broker 2's restart may still move metadata leadership: a retriable 503 is retried, as clients do (409:
        # an earlier attempt did commit).
        wait_until(lambda: http.post("/v1/topics", json=body).status_code in (201, 409), 30, "topic created")
        wait_until(lambda: in_sync(cluster, "movable", 3, size=2, via=0), 30, "movable in sync")
        # Through the project's client, as an application would: idempotent and retried after a retriable refusal (a
        # leadership still settling, or a follower briefly out of the ISR on a loaded machine: CI saw
        # NOT_ENOUGH_REPLICAS here), so an unacknowledged write fails here rather than look like lost records below.
        with GoQueueClient([cluster.url(i) for i in range(3)]) as client:
            client.produce("movable", [ProduceRecord(value=f"m{i}") for i in range(30)], acks="all")
        wait_until(lambda: all(2 not in cluster.partition("movable", p, 0)["replicas"] for p in range(3))
                   if http.post(f"{admin}/brokers/2/drain").status_code == 200 else False, 60, "movable drained")
        answer = http.post(f"{admin}/brokers/2/drain").json()
        assert answer["done"] is False
        assert any("admin/0: every other live broker already holds a replica" in r for r in answer["reasons"])
        wait_until(lambda: all(len(cluster.partition("movable", p, 0)["isr"]) == 2 for p in range(3)), 60,
                   "new replicas in sync")
        # A leader that just took over may not have moved its high watermark up yet: read once it has.
        wait_until(lambda: sum(len(r) for r in consume_all(http, "movable", 3).values()) >= 30, 30, "all readable")
        values = sorted(v for records in consume_all(http, "movable", 3).values() for _, v in records)
        assert values == sorted(f"m{i}" for i in range(30))


def test_a_broker_back_on_an_empty_volume_leaves_every_isr_and_loses_nothing(cluster: LocalCluster) -> None:
    """A replaced PVC: same broker id, no data, no Raft journal. The broker must not count as in sync (it would be
    electable within the lag window) until it has fetched everything again."""
    with cluster.client() as http:
        assert http.post("/v1/topics", json={"name": "wiped", "partitions": 1, "replicationFactor": 3}
                         ).status_code == 201
        for i in range(20):
            assert http.post("/v1/topics/wiped/records", json={"records": [{"value": f"w{i}"}]}).status_code == 200
    leader = cluster.leader_of("wiped", 0)
    victim = next(i for i in range(3) if i != leader)
    wait_until(lambda: in_sync(cluster, "wiped", 1), 30, "full ISR")
    broker = cluster.brokers[victim]
    broker.stop()
    shutil.rmtree(broker.data_dir)
    shutil.rmtree(broker.wal_dir)
    cluster.restart(victim)
    assert '"event": "broker.storage_replaced"' in broker.log_text(), "the new volume is noticed before serving"
    wait_until(lambda: in_sync(cluster, "wiped", 1, via=victim), 60, "the wiped replica back in sync")
    # The copy it fetched again is whole: stop the old leader, make the wiped broker lead, read its copy.
    survivor = leader if leader is not None else 0
    cluster.brokers[survivor].stop()
    wait_until(lambda: cluster.leader_of("wiped", 0, victim) not in (None, survivor), 30, "a new leader")
    assert read_while_leading(cluster, "wiped", victim) == [f"w{i}" for i in range(20)]


def test_corrupt_replica_is_quarantined_and_repaired_from_the_leader(cluster: LocalCluster) -> None:
    with cluster.client() as http:
        body = {"name": "bitrot", "partitions": 1, "replicationFactor": 3, "config": {"segmentBytes": 4096}}
        assert http.post("/v1/topics", json=body).status_code == 201
        for i in range(20):  # several segments, so the damage is not in the tail
            assert http.post("/v1/topics/bitrot/records", json={"records": [{"value": f"{i}-{'x' * 400}"}]}
                             ).status_code == 200
    leader = cluster.leader_of("bitrot", 0)
    victim = next(i for i in range(3) if i != leader)
    wait_until(lambda: in_sync(cluster, "bitrot", 1), 30, "full ISR")
    cluster.brokers[victim].stop()
    log_dir = cluster.brokers[victim].data_dir / "bitrot-0"
    first = sorted(log_dir.glob("*.log"))[0]
    data = bytearray(first.read_bytes())
    data[100] ^= 0xFF  # flip a byte inside the first batch of the first (sealed) segment
    first.write_bytes(bytes(data))
    (log_dir / "recovery-point").unlink()  # make recovery validate every segment, as after an unclean stop
    cluster.restart(victim)
    assert list(log_dir.parent.glob("bitrot-0.corrupt-*")), "the damaged copy is kept aside, not deleted"
    survivor = leader if leader is not None else 0
    # Asked of the victim: it left the ISR before it became ready, so its view cannot show the ISR from before.
    wait_until(lambda: in_sync(cluster, "bitrot", 1, via=victim), 60, "the repaired replica back in sync")
    # The repaired replica has every record again: stop the old leader, make the repaired one lead, read its copy.
    cluster.brokers[survivor].stop()
    wait_until(lambda: cluster.leader_of("bitrot", 0, victim) not in (None, survivor), 30, "a new leader")
    assert read_while_leading(cluster, "bitrot", victim) == [f"{i}-{'x' * 400}" for i in range(20)]
