"""Replica reassignment on a real 4-broker cluster under acks=all load: a partition's leader is drained (its
replica moves to the fourth broker) while a broker is SIGKILLed mid-copy — that leaving leader, the controller
(the metadata leader, which drives the move), or the broker being added. The move is Raft metadata state, so it
resumes and completes once the killed broker is back; no acknowledged record is lost (`History.check`), and the
ISR, sampled throughout, never falls below min.insync.replicas: the new replica joins before any old one leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster_process import History, LocalCluster, Producer, consume_all

from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError
from goqueue.models import ReassignmentGoals, ReassignmentProgress
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.integration

TOPIC = "moving"
MIN_INSYNC = 2
PRELOAD = 3000            # records of 1 KiB: ~3 MiB each new replica copies ...
THROTTLE = 2**20          # ... at 1 MiB/s (faster than the load), still copying when a broker is killed
FETCH_BYTES = 128 * 1024  # per follower fetch (the throttle lends one fetch at a time)
WAIT_S = 120.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    # A follower fetch of 8 MiB (the default) would copy the whole ~3 MiB preload in the one fetch the throttle lends
    # (CI saw the copy done before the first progress read): 128 KiB fetches make it take the throttle's ~3 s.
    running = LocalCluster(tmp_path, size=4, env={"GOQUEUE_REPLICATION_FETCHMAXBYTES": str(FETCH_BYTES)}).start()
    try:
        yield running
    finally:
        for broker in running.brokers:
            if broker.process is not None and broker.running:
                broker.stop()
        for broker in running.brokers:
            assert "Traceback" not in broker.log_text(), broker.log_text()[-3000:]


class IsrSampler(threading.Thread):
    """Reads the moving partition's ISR from the metadata (any broker up answers) until stopped."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.urls, self.stopping, self.sizes = all_urls(cluster), threading.Event(), list[int]()

    def run(self) -> None:
        with GoQueueClient(self.urls, timeout_s=5) as client:
            while not self.stopping.wait(0.05):
                try:
                    progress = client.reassignment_progress()
                except GoQueueError:
                    continue  # every broker it tried was down (the teardown of a failed test)
                self.sizes.extend(len(moving.isr) for moving in progress.partitions)


def all_urls(cluster: LocalCluster) -> list[str]:
    return [cluster.url(b) for b in range(len(cluster.brokers))]


def assert_bytes_copied_grow(admin: GoQueueClient, progress: ReassignmentProgress, planned: int) -> None:
    """Progress counts bytes: the leader's size for the one new replica, and what that replica holds (it grows)."""
    assert progress.bytes_to_copy is not None
    assert progress.bytes_to_copy >= planned
    assert progress.bytes_copied is not None
    assert 0 <= progress.bytes_copied < progress.bytes_to_copy  # 1 MiB/s: ~3 MiB is not copied yet
    first = progress.bytes_copied
    wait_until(lambda: (admin.reassignment_progress().bytes_copied or 0) > first, 30,
               message="the new replica's bytes copied grows")


def preload(cluster: LocalCluster, admin: GoQueueClient, http: httpx.Client, replication_factor: int) -> None:
    """The topic, ~3 MiB in sync on its replicas, and broker 0 (which plans) connected to every broker: a plan
    places new replicas only on brokers the planning broker sees alive, and a fresh one may not be yet."""
    created = http.post("/v1/topics", json={
        "name": TOPIC, "partitions": 1, "replicationFactor": replication_factor,
        "config": {"minInsyncReplicas": MIN_INSYNC}})
    assert created.status_code == 201, created.text
    for start in range(0, PRELOAD, 100):
        answer = http.post(f"/v1/topics/{TOPIC}/records",
                           json={"records": [{"value": f"pre-{start + i}:" + "x" * 1024} for i in range(100)]})
        assert answer.status_code == 200, answer.text
    wait_until(lambda: len(cluster.partition(TOPIC, 0, 0)["isr"]) == replication_factor, 60,
               message="preload in sync")
    wait_until(lambda: [m.status for m in admin.cluster_members()] == ["up"] * len(cluster.brokers), 60,
               message="broker 0 connected to every broker")


def move_under_load(cluster: LocalCluster, victim: str, replication_factor: int) -> None:
    with GoQueueClient(cluster.url(0)) as admin, cluster.client(0) as http:
        preload(cluster, admin, http, replication_factor)
        replicas, leader = cluster.partition(TOPIC, 0, 0)["replicas"], cluster.leader_of(TOPIC, 0, 0)
        assert leader is not None
        plan = admin.plan_reassignment(ReassignmentGoals(drain_brokers=[leader], throttle=THROTTLE))
        moves = [m for m in plan.moves if m.topic == TOPIC]  # the drain moves the internal topic's replicas too
        assert [m.replicas for m in moves] == [replicas], plan
        target = moves[0].target  # the leader leaves, another broker comes
        (added,) = set(target) - set(replicas)
        assert set(target) == set(replicas) - {leader} | {added}
        assert moves[0].bytes_to_copy > PRELOAD * 1024
        assert plan.estimated_s is not None
        assert plan.estimated_s >= moves[0].bytes_to_copy / THROTTLE

        history = History()
        producer = Producer(cluster, TOPIC, history, "load")
        sampler = IsrSampler(cluster)
        producer.start()
        sampler.start()
        wait_until(lambda: history.count() >= 100, WAIT_S, message="load flowing")
        assert admin.execute_reassignment(moves, THROTTLE).started == 1
        progress = admin.reassignment_progress()
        assert (progress.throttle, progress.partitions[0].copying) == (THROTTLE, [added])
        assert_bytes_copied_grow(admin, progress, moves[0].bytes_to_copy)
        moving = next(p for p in admin.replication_status().partitions if p.topic == TOPIC)
        assert not moving.under_replicated  # a replica still copying is not lost redundancy

        killed = {"leader": lambda: cluster.leader_of(TOPIC, 0, target[0]), "added": lambda: added,
                  "controller": lambda: admin.cluster_leader().leader}[victim]()
        assert killed is not None
        cluster.brokers[killed].kill()
        before = history.count()
        wait_until(lambda: history.count() >= before + 100, WAIT_S, message="load flowing after the kill")
        cluster.restart(killed)

    with GoQueueClient(all_urls(cluster)) as admin:
        wait_until(lambda: admin.reassignment_progress().done, WAIT_S, message="the move completed")
        assert admin.reassignment_progress().throttle is None  # cleared with the last move
        producer.stopping.set()
        producer.join(timeout=WAIT_S)
        sampler.stopping.set()
        sampler.join(timeout=10)
        wait_until(lambda: cluster.partition(TOPIC, 0, target[0])["replicas"] == target
                   and sorted(cluster.partition(TOPIC, 0, target[0])["isr"]) == sorted(target), WAIT_S,
                   message="target replicas in sync")
        assert sampler.sizes, "never sampled during the move"
        assert min(sampler.sizes) >= MIN_INSYNC, sampler.sizes
        with cluster.client(target[0]) as http:
            history.check(consume_all(http, TOPIC, 1), exactly_once=True)
    assert not history.errors, history.errors[:5]
    removed = cluster.brokers[leader].data_dir / f"{TOPIC}-0"
    wait_until(lambda: not removed.exists(), 30, message="the removed broker deleted its copy")


def test_killing_the_leaving_leader_mid_move_loses_nothing_and_the_move_completes(cluster: LocalCluster) -> None:
    """Replication factor 3: the ISR keeps two members when the leader dies."""
    move_under_load(cluster, "leader", replication_factor=3)


def test_killing_the_controller_mid_move_loses_nothing_and_the_move_completes(cluster: LocalCluster) -> None:
    """The metadata leader drives the move: another broker's controller picks it up from the Raft state."""
    move_under_load(cluster, "controller", replication_factor=3)


def test_killing_the_broker_being_added_mid_copy_loses_nothing_and_the_move_completes(cluster: LocalCluster) -> None:
    """Replication factor 2 and min.insync.replicas 2: only adding before removing keeps acks=all writes going
    while the copy runs (the one-shot reassignment took the leaving replica out of the ISR at once)."""
    move_under_load(cluster, "added", replication_factor=2)

