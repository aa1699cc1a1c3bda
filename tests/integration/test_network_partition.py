"""A real network partition: three brokers in their own network namespaces on a bridge, and the leader cut off.

The test builds the network itself (`ip netns`, veth pairs, a bridge; it needs CAP_NET_ADMIN, which CI has as
root) and tears it down after, on every path. Cutting the leader's link is a true partition, unlike SIGSTOP: the
isolated broker keeps running and believes it leads until its Raft fallback timeout. It must acknowledge nothing
the majority does not have, and rejoin as a follower when the link returns.

Two details make the test prove that:
* The isolated leader is asked to commit from inside its own namespace (`ip netns exec`), where its address is
  still reachable: the test process cannot reach it once the link is cut, and an unreachable broker proves nothing.
  The probe must get an HTTP answer, and the answer must not be an acknowledgement.
* With `br_netfilter` loaded, traffic between the bridge's ports passes iptables' FORWARD chain, whose policy a
  Docker daemon sets to DROP; the brokers would then never form a quorum. The test accepts its own bridge's
  traffic with a rule of its own, inserted first and removed at teardown, and leaves the policy as it found it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_process import BrokerNotReady, BrokerProcess
from cluster_process import PASSWORD, History, LocalCluster, Producer, consume_all, wait_until

pytestmark = pytest.mark.integration

SUBNET = "10.77.{n}.{host}"
ACK_TIMEOUT_S = 5  # how long a leader waits for its in-sync replicas before it refuses an acks=all write
PROBE = """
import json, sys, httpx
url, timeout = sys.argv[1], float(sys.argv[2])
try:
    with httpx.Client(timeout=timeout) as http:
        topic = http.get(url + "/v1/topics/split").json()["partitionDetails"][0]
        answer = http.post(url + "/v1/topics/split/records",
                           json={"partition": 0, "records": [{"value": "from-the-minority"}]})
    print(json.dumps({"leader": topic["leader"], "status": answer.status_code, "body": answer.text}))
except httpx.HTTPError as exc:
    print(json.dumps({"error": repr(exc)}))
"""


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
        # Bridged frames between our veths, whatever FORWARD's policy; tagged so teardown removes exactly this.
        self.forward_rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge,
                             "-m", "comment", "--comment", f"goqueue partition test {self.bridge}", "-j", "ACCEPT"]

    def create(self) -> None:
        """Build the network; on any failure, undo what was built before raising."""
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            subprocess.run(["iptables", "-I", *self.forward_rule[:1], "1", *self.forward_rule[1:]], check=True,
                           capture_output=True, text=True)
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
        except BaseException:
            self.destroy()
            raise

    def cut(self, index: int) -> None:
        ip("link", "set", self.host_ends[index], "down")

    def heal(self, index: int) -> None:
        ip("link", "set", self.host_ends[index], "up")

    def exec(self, index: int, *command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """Run a command inside broker `index`'s namespace, which still reaches that broker when its link is cut."""
        return subprocess.run(["ip", "netns", "exec", self.namespaces[index], *command], capture_output=True,
                              text=True, timeout=timeout_s, check=False)

    def leftovers(self) -> list[str]:
        """What of this network still exists (empty after `destroy`)."""
        found = []
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
        found += [ns for ns in self.namespaces if ns in namespaces.split()]
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
        found += [name for name in (self.bridge, *self.host_ends) if f" {name}:" in links or f" {name}@" in links]
        if shutil.which("iptables") and subprocess.run(["iptables", "-C", *self.forward_rule], capture_output=True,
                                                       check=False).returncode == 0:
            found.append(f"iptables rule for {self.bridge}")
        return found

    def destroy(self) -> None:
        """Remove everything `create` may have made, whatever got made: each step tolerates its object missing."""
        for host_end in self.host_ends:  # at once, with its peer: a namespace's own links go only later, async
            subprocess.run(["ip", "link", "del", host_end], check=False, capture_output=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        if shutil.which("iptables"):
            while subprocess.run(["iptables", "-D", *self.forward_rule], check=False,
                                 capture_output=True).returncode == 0:
                pass  # inserted once; deleted until none is left


@pytest.fixture
def netns() -> Iterator[Netns]:
    net = Netns(3)
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:  # `make test` installs both (iptables comes with docker.io)
            pytest.fail(f"`{tool}` is missing: apt-get install {package} (make test installs it)")
    try:
        net.create()
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"cannot create network namespaces here ({exc.stderr.strip()}): the test needs them")
    try:
        yield net
    finally:
        net.destroy()


def partition_brokers(root: Path, net: Netns) -> list[BrokerProcess]:
    ports = (8080, 9000, 7000, 8081)  # each broker has a network stack of its own: the runbook's ports, as in pods
    brokers = [BrokerProcess(root / f"broker-{i}", host=address, ports=ports, wrapper=["ip", "netns", "exec", ns])
               for i, (address, ns) in enumerate(zip(net.addresses, net.namespaces, strict=True))]
    peers = ",".join(f"{address}:7000" for address in net.addresses)
    for i, broker in enumerate(brokers):
        broker.extra_env.update({"GOQUEUE_BROKER_ID": str(i), "GOQUEUE_CLUSTER_PEERS": peers,
                                 "GOQUEUE_CLUSTER_PASSWORD": PASSWORD, "GOQUEUE_REPLICATION_REPLICALAGMAX": "3s",
                                 "GOQUEUE_REPLICATION_PREFERREDLEADERDELAY": "2s",
                                 "GOQUEUE_REPLICATION_ACKTIMEOUT": f"{ACK_TIMEOUT_S}s"})
    return brokers


@pytest.fixture
def partitioned_cluster(tmp_path: Path, netns: Netns) -> Iterator[LocalCluster]:
    cluster = LocalCluster.of(partition_brokers(tmp_path, netns)).start()  # kills them all if it fails
    try:
        yield cluster
    finally:
        for broker in cluster.brokers:
            if broker.running:
                broker.stop()


def probe_from_inside(net: Netns, cluster: LocalCluster, index: int) -> dict[str, object]:
    """Broker `index`'s view of split/0 and its answer to an acks=all write, asked from its own namespace."""
    result = net.exec(index, sys.executable, "-c", PROBE, cluster.url(index), str(ACK_TIMEOUT_S + 10),
                      timeout_s=ACK_TIMEOUT_S + 30)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout)
    return answer


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
        # At once, while the old leader certainly still believes it leads; and again once the majority has a
        # leader of its own and acknowledges writes (two leaders now: only one may commit).
        probes: list[dict[str, object]] = []

        def probe_early() -> None:
            try:
                probes.append(probe_from_inside(netns, cluster, leader))
            except Exception as exc:  # reported by the assertions below, not lost with the thread
                probes.append({"error": repr(exc)})

        early = threading.Thread(target=probe_early)
        early.start()
        wait_until(lambda: cluster.leader_of("split", 0, majority[0]) in majority, 30, "a leader in the majority")
        before = history.count()
        wait_until(lambda: history.count() > before + 100, 30, "writes acknowledged by the majority")
        probes.append(probe_from_inside(netns, cluster, leader))
        early.join(ACK_TIMEOUT_S + 40)
        assert len(probes) == 2, "the first probe did not finish"
        for answer in probes:
            assert "error" not in answer, f"the probe did not reach the isolated broker: {answer}"
            assert answer["leader"] is not None, answer
            assert int(str(answer["leader"])) == leader, f"the isolated broker no longer believes it leads: {answer}"
            assert answer["status"] != 200, f"the isolated old leader acknowledged a write: {answer}"
    finally:
        netns.heal(leader)
    wait_until(lambda: len(cluster.partition("split", 0, majority[0])["isr"]) == 3, 60, "the old leader rejoined")
    producer.stopping.set()
    producer.join(30)
    with cluster.client(majority[0]) as http:
        consumed = consume_all(http, "split", 1)
    history.check(consumed, exactly_once=True)
    assert "from-the-minority" not in [v for _, v in consumed[0]]


def test_a_cluster_that_cannot_start_leaves_no_process_and_no_network(tmp_path: Path) -> None:
    """The fixtures' failure path, made to happen: the brokers start but never form a quorum (their bridge's
    traffic is dropped), so starting the cluster fails half-way. Nothing may be left running: before, the three
    brokers outlived the test and broke the next ones (`liveBrokers` 2 of 3, unclosed logs)."""
    net = Netns(3)
    try:
        net.create()
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"cannot create network namespaces here ({exc.stderr.strip()}): the test needs them")
    try:
        # Cut every broker off: each starts, none finds a peer, no metadata quorum, never ready.
        for index in range(3):
            net.cut(index)
        cluster = LocalCluster.of(partition_brokers(tmp_path, net))
        with pytest.raises(BrokerNotReady):
            cluster.start(timeout_s=5)
        assert [b.root.name for b in cluster.brokers if b.running] == []
        assert all(b.process is not None and b.process.returncode is not None for b in cluster.brokers)
        assert all(b._log is None for b in cluster.brokers), "a broker log left open"
    finally:
        net.destroy()
    assert net.leftovers() == []


def test_a_network_that_fails_half_way_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Netns.create` failing after the bridge, the firewall rule and a namespace exist removes all of them."""
    net = Netns(3)
    made: list[tuple[str, ...]] = []
    real_ip = ip

    def failing_ip(*args: str) -> None:
        if args[:2] == ("netns", "add") and args[2] == net.namespaces[1]:
            raise subprocess.CalledProcessError(2, ["ip", *args], stderr="made to fail")
        real_ip(*args)
        made.append(args)

    monkeypatch.setattr(sys.modules[__name__], "ip", failing_ip)
    with pytest.raises(subprocess.CalledProcessError):
        net.create()
    assert ("netns", "add", net.namespaces[0]) in made, "the failure did not happen half-way"
    assert net.leftovers() == []
