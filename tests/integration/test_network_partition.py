"""A real network partition: three brokers in their own network namespaces on a bridge, and the leader cut off.

The test builds the network itself (`ip netns`, veth pairs, a bridge; it needs CAP_NET_ADMIN, which CI has as
root) and tears it down after. Cutting the leader's link is a true partition, unlike SIGSTOP: the isolated broker
keeps running and believes it leads until its Raft fallback timeout. It must acknowledge nothing the majority
does not have, and rejoin as a follower when the link returns.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from broker_process import BrokerProcess
from cluster_process import PASSWORD, History, LocalCluster, Producer, consume_all, wait_until

pytestmark = pytest.mark.integration

SUBNET = "10.77.{n}.{host}"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Netns:
    """A bridge in the root namespace and one namespace per broker, each with a veth into the bridge."""

    def __init__(self, size: int) -> None:
        tag = uuid.uuid4().hex[:5]
        self.n = int(tag, 16) % 200 + 20  # a /24 of its own, so parallel runs do not collide
        self.bridge = f"gqbr{tag}"
        self.namespaces = [f"gq{tag}n{i}" for i in range(size)]
        self.host_ends = [f"gq{tag}h{i}" for i in range(size)]
        self.addresses = [SUBNET.format(n=self.n, host=i + 2) for i in range(size)]

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{SUBNET.format(n=self.n, host=1)}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for ns, host_end, address in zip(self.namespaces, self.host_ends, self.addresses, strict=True):
            ip("netns", "add", ns)
            ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", host_end, "master", self.bridge)
            ip("link", "set", host_end, "up")
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def cut(self, index: int) -> None:
        ip("link", "set", self.host_ends[index], "down")

    def heal(self, index: int) -> None:
        ip("link", "set", self.host_ends[index], "up")

    def destroy(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)


@pytest.fixture
def netns() -> Iterator[Netns]:
    net = Netns(3)
    try:
        net.create()
    except FileNotFoundError as exc:  # `ip` missing: `make test` installs iproute2, so this is a set-up failure
        net.destroy()
        pytest.fail(f"iproute2's `ip` is missing (make test installs it): {exc}")
    except subprocess.CalledProcessError as exc:
        net.destroy()
        pytest.skip(f"this kernel/sandbox forbids network namespaces ({exc.stderr.strip()})")
    try:
        yield net
    finally:
        net.destroy()


@pytest.fixture
def partitioned_cluster(tmp_path: Path, netns: Netns) -> Iterator[LocalCluster]:
    cluster = LocalCluster.__new__(LocalCluster)
    ports = (8080, 9000, 7000)  # each broker has a network stack of its own: the runbook's ports, as in pods
    cluster.brokers = [
        BrokerProcess(tmp_path / f"broker-{i}", host=address, ports=ports, wrapper=["ip", "netns", "exec", ns])
        for i, (address, ns) in enumerate(zip(netns.addresses, netns.namespaces, strict=True))]
    peers = ",".join(f"{address}:7000" for address in netns.addresses)
    for i, broker in enumerate(cluster.brokers):
        broker.extra_env.update({"GOQUEUE_BROKER_ID": str(i), "GOQUEUE_CLUSTER_PEERS": peers,
                                 "GOQUEUE_CLUSTER_PASSWORD": PASSWORD, "GOQUEUE_REPLICATION_REPLICALAGMAX": "3s",
                                 "GOQUEUE_REPLICATION_PREFERREDLEADERDELAY": "2s"})
    cluster.start()
    try:
        yield cluster
    finally:
        for broker in cluster.brokers:
            if broker.running:
                broker.stop()


def test_isolated_leader_commits_nothing_and_rejoins(partitioned_cluster: LocalCluster, netns: Netns) -> None:
    cluster = partitioned_cluster
    with cluster.client(0) as http:
        assert http.post("/v1/topics", json={"name": "split", "partitions": 1, "replicationFactor": 3}
                         ).status_code == 201
    history = History()
    producer = Producer(cluster, "split", history, "p")
    producer.start()
    wait_until(lambda: history.count() > 100, 30, "first writes")
    leader = cluster.leader_of("split", 0)
    assert leader is not None
    majority = [i for i in range(3) if i != leader]
    netns.cut(leader)
    try:
        wait_until(lambda: cluster.leader_of("split", 0, majority[0]) in majority, 30, "a leader in the majority")
        before = history.count()
        wait_until(lambda: history.count() > before + 100, 30, "writes acknowledged by the majority")
        # The isolated broker, reached directly, must not acknowledge acks=all writes.
        with httpx.Client(base_url=cluster.url(leader), timeout=3) as isolated:
            try:
                answer = isolated.post("/v1/topics/split/records",
                                       json={"partition": 0, "records": [{"value": "from-the-minority"}]})
                assert answer.status_code != 200, "the isolated old leader acknowledged a write"
            except httpx.HTTPError:
                pass  # unreachable from here too: equally fine
    finally:
        netns.heal(leader)
    wait_until(lambda: len(cluster.partition("split", 0, majority[0])["isr"]) == 3, 60, "the old leader rejoined")
    producer.stopping.set()
    producer.join(30)
    with cluster.client(majority[0]) as http:
        consumed = consume_all(http, "split", 1)
    history.check(consumed, exactly_once=True)
    assert "from-the-minority" not in [v for _, v in consumed[0]]
