"""Stopping a whole cluster at once (a namespace or a Helm release deleted, `make down`): each broker hands its
leaderships on only while a metadata quorum is reachable, and abandons a pending move the moment the quorum goes.
Before, the last brokers standing waited out one proposal timeout (10 s) per partition they led, most of their
grace period, for moves that could never commit, until half the grace period ran out: a 3-broker cluster took 15 s
to stop (shutdownGrace 30 s), 21 s with 50 s; each pod of an operator-run cluster about 27 s."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import STOP_TIMEOUT_S
from cluster_process import LocalCluster, wait_until

pytestmark = pytest.mark.integration

PARTITIONS = 6


def events(log_text: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in log_text.splitlines():
        if f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three brokers and a topic of PARTITIONS partitions, every replica in sync; every broker killed at the end."""
    running = LocalCluster(tmp_path, size=3).start()
    try:
        with running.client(0) as http:
            created = http.post("/v1/topics", json={"name": "t", "partitions": PARTITIONS, "replicationFactor": 3})
            assert created.status_code == 201, created.text
        wait_until(lambda: all(len(running.partition("t", p, 1)["isr"]) == 3 for p in range(PARTITIONS)), 30,
                   message="every replica in sync")
        yield running
    finally:
        for broker in running.brokers:
            broker.kill()


def test_a_whole_cluster_stopped_at_once_proposes_nothing_into_a_lost_quorum(cluster: LocalCluster) -> None:
    for broker in cluster.brokers:  # every leader has live in-sync replicas to hand over to, as it sees it
        assert broker.process is not None
        broker.process.send_signal(signal.SIGTERM)
    for broker in cluster.brokers:
        assert broker.process is not None
        broker.process.wait(STOP_TIMEOUT_S)  # not stop(): a second SIGTERM would cut the shutdown short
    assert [broker.stop() for broker in cluster.brokers] == [0, 0, 0]
    for broker in cluster.brokers:
        log = broker.log_text()
        timed_out = [e for e in events(log, "controller.proposal_refused") if "not committed" in str(e["reason"])]
        assert not timed_out, log[-3000:]
        assert not events(log, "cluster.handover_incomplete"), log[-3000:]  # half its grace spent waiting
        assert "server.stopped" in log
        assert "Traceback" not in log, log[-3000:]


def test_one_broker_stopped_in_a_healthy_cluster_hands_each_of_its_leaderships_on_first(cluster: LocalCluster) -> None:
    """The rolling-restart case the quorum rule must not touch: the stopping broker itself elects a successor for
    every partition it leads (its log says so) before it exits, rather than leaving them to the controller's
    failover once it is gone."""
    led = sorted(p for p in range(PARTITIONS) if cluster.leader_of("t", p, 1) == 0)
    assert led, "broker 0 leads none of the topic's partitions"
    assert cluster.brokers[0].stop() == 0
    log = cluster.brokers[0].log_text()
    handed = sorted(int(str(e["partition"])) for e in events(log, "partition.leader_elected") if e["topic"] == "t")
    assert handed == led, log[-3000:]
    assert not events(log, "cluster.handover_skipped"), log[-3000:]
    wait_until(lambda: all(cluster.leader_of("t", p, 1) not in (0, None) for p in led), 10,
               message="broker 1 sees the new leaders")  # it applies the committed moves a moment later
