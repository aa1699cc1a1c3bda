"""Fixtures that start brokers leave nothing behind when start-up fails half-way: the failure is made to happen,
and afterwards no broker process runs and no log file is open (an unclosed log or a running child is also an
unraisable warning, which fails the session). Before, a cluster whose brokers never became ready left all of them
running, and the next cluster tests failed on the leftovers (issue 17). The network-namespace variant, with its
bridge and firewall rule, is in test_network_partition.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from broker_process import BrokerNotReady, BrokerProcess, free_port
from cluster_process import PASSWORD, LocalCluster

pytestmark = pytest.mark.integration


def gone(broker: BrokerProcess) -> bool:
    """Exited and reaped, its log closed."""
    if broker.process is None or broker.process.returncode is None:
        return False
    try:
        os.kill(broker.process.pid, 0)
    except ProcessLookupError:
        return broker._log is None
    return False  # the pid exists again: only if reused; treat as not gone


def test_a_broker_that_never_gets_ready_is_killed(tmp_path: Path) -> None:
    # Its only peer does not exist: no metadata quorum, so /readyz never answers 200.
    broker = BrokerProcess(tmp_path / "lonely")
    broker.extra_env.update({"GOQUEUE_BROKER_ID": "0", "GOQUEUE_CLUSTER_PASSWORD": PASSWORD,
                             "GOQUEUE_CLUSTER_PEERS": f"127.0.0.1:{broker.raft_port},127.0.0.1:{free_port()}"})
    with pytest.raises(BrokerNotReady, match="not ready after"):
        broker.start(timeout_s=3)
    assert gone(broker)


def test_a_cluster_with_a_broker_that_cannot_start_kills_the_others(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    cluster.brokers[2].extra_env["GOQUEUE_BROKER_PORT"] = "not-a-port"  # exits 2 at once
    # The other two form a metadata quorum but wait for the third broker (the consumer-state topic has three
    # replicas): never ready.
    with pytest.raises(BrokerNotReady):
        cluster.start(timeout_s=10)
    assert cluster.brokers[2].returncode == 2
    assert [gone(b) for b in cluster.brokers] == [True, True, True]
