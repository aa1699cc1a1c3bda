"""Broker-to-broker traffic is apart and authenticated (issue 15, item 1), attacked on three real brokers.

The attack: both followers of a partition frozen (SIGSTOP), someone on the network sends the leader follower fetches
in their name, so the leader believes them caught up and acknowledges acks=all writes only it holds; then the leader
dies and those writes are gone. Forged here on the client port (which served `/internal/` routes before) and on the
internal listener without a credential and with one made from the wrong password: each must be refused with a
typed error, nothing acks=all may be acknowledged while the followers are frozen, and nothing acknowledged may be
lost when the leader is killed.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from cluster_process import PASSWORD, History, LocalCluster, consume_all, wait_until

from goqueue.errors import NotLeader, Unauthenticated, Unavailable
from goqueue.replication.peers import REPLICA_MEDIA_TYPE, PeerClient, ReplicaFetchRequest
from goqueue.security.broker_credential import HEADER, BrokerSigner, authority

pytestmark = pytest.mark.integration

ACK_TIMEOUT_S = 2
FROZEN_PRODUCES = 20
FORGED_OFFSET = 2**62  # "I have everything": the leader's high watermark would follow its own log end


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    running = LocalCluster(tmp_path, env={"GOQUEUE_REPLICATION_ACKTIMEOUT": f"{ACK_TIMEOUT_S}s"}).start()
    try:
        yield running
    finally:
        for broker in running.brokers:
            if broker.running:
                os.kill(broker.pid, signal.SIGCONT)
                broker.stop()


def create_topic(cluster: LocalCluster, name: str) -> None:
    with cluster.client() as http:
        response = http.post("/v1/topics", json={"name": name, "partitions": 1, "replicationFactor": 3})
        assert response.status_code == 201, response.text


def leader_epoch(cluster: LocalCluster, topic: str, leader: int) -> int:
    with cluster.client(leader) as http:
        (state,) = [p for p in http.get("/v1/replication/status").json()["partitions"]
                    if (p["topic"], p["partition"]) == (topic, 0)]
    return int(state["leaderEpoch"])


def sign(signer: BrokerSigner, method: str, url: str, body: bytes) -> str:
    parsed = httpx.URL(url)
    return signer.credential(authority(parsed.host, parsed.port or 80), method, parsed.raw_path, body)


def settled(http: httpx.Client, history: History, timeout_s: float = 30) -> dict[int, list[tuple[int, str]]]:
    """The partition as the new leader serves it, once its high watermark has caught up (its in-sync follower
    fetches again) — or whatever it holds after `timeout_s`, for the history check to judge."""
    deadline = time.monotonic() + timeout_s
    while True:
        consumed = consume_all(http, "victim", 1)
        if len(consumed[0]) >= history.count() or time.monotonic() > deadline:
            return consumed
        time.sleep(0.2)


class Forger(threading.Thread):
    """Sends the leader forged follower fetches in the frozen followers' names, over every route it may try, until
    stopped; counts what each route answered (HTTP status and error code, or `unreachable`)."""

    def __init__(self, targets: dict[str, tuple[str, dict[str, str], BrokerSigner | None]], followers: list[int],
                 topic: str, epoch: int) -> None:
        super().__init__(daemon=True)
        self.targets, self.followers, self.topic, self.epoch = targets, followers, topic, epoch
        self.answers: dict[str, Counter[str]] = {name: Counter() for name in targets}
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5) as http:
            while not self.stopping.is_set():
                for name, (url, headers, signer) in self.targets.items():
                    for follower in self.followers:
                        body = msgspec.msgpack.encode(ReplicaFetchRequest(
                            replica_id=follower, max_wait_ms=0, max_bytes=1024,
                            partitions=[(self.topic, 0, FORGED_OFFSET, self.epoch)]))
                        sent = {"content-type": REPLICA_MEDIA_TYPE, **headers}
                        if signer is not None:
                            sent[HEADER] = sign(signer, "POST", url, body)
                        try:
                            answer = http.post(url, content=body, headers=sent)
                        except httpx.HTTPError:
                            self.answers[name]["unreachable"] += 1
                            continue
                        code = answer.json().get("error", {}).get("code") if answer.status_code >= 400 else "ok"
                        self.answers[name][f"{answer.status_code} {code}"] += 1
                time.sleep(0.05)


def test_forged_follower_fetches_are_refused_and_lose_nothing(cluster: LocalCluster) -> None:
    create_topic(cluster, "victim")
    history = History()
    with cluster.client() as http:
        values = [f"before-{i}" for i in range(10)]
        answer = http.post("/v1/topics/victim/records", json={"records": [{"value": v} for v in values]})
        assert answer.status_code == 200, answer.text
        history.record(answer.json()["offsets"], values)
    wait_until(lambda: len(cluster.partition("victim", 0)["isr"]) == 3, 30, "all three in sync")
    leader = cluster.leader_of("victim", 0)
    assert leader is not None
    followers = [i for i in range(3) if i != leader]
    target = cluster.brokers[leader]
    path = "/internal/v1/replica/fetch"
    forger = Forger({
        "client port": (target.url + path, {"X-GoQueue-Forwarded": "1"}, None),
        "internal, no credential": (target.internal_url + path, {}, None),
        "internal, wrong password": (target.internal_url + path, {},
                                     BrokerSigner(followers[0], "not-" + PASSWORD, time.time)),
    }, followers, "victim", leader_epoch(cluster, "victim", leader))

    for follower in followers:
        os.kill(cluster.brokers[follower].pid, signal.SIGSTOP)
    acknowledged_while_frozen = 0
    forger.start()
    try:
        with httpx.Client(base_url=target.url, timeout=ACK_TIMEOUT_S + 10) as http:
            for i in range(FROZEN_PRODUCES):
                value = f"frozen-{i}"
                answer = http.post("/v1/topics/victim/records", json={"acks": "all", "records": [{"value": value}]})
                if answer.status_code == 200:
                    acknowledged_while_frozen += 1
                    history.record(answer.json()["offsets"], [value])
    finally:
        forger.stopping.set()
        forger.join(10)
        target.kill()  # the leader dies: only what its followers have survives
        for follower in followers:
            os.kill(cluster.brokers[follower].pid, signal.SIGCONT)

    survivor = followers[0]
    wait_until(lambda: cluster.leader_of("victim", 0, survivor) in followers, 60, "a follower leads")
    with cluster.client(survivor) as http:
        history.check(settled(http, history))
    assert acknowledged_while_frozen == 0, f"{acknowledged_while_frozen} acks=all produces acknowledged while " \
                                           f"both followers were frozen; forged fetches answered {forger.answers}"
    assert set(forger.answers["client port"]) == {"404 NOT_FOUND"}, forger.answers
    assert set(forger.answers["internal, no credential"]) == {"401 UNAUTHENTICATED"}, forger.answers
    assert set(forger.answers["internal, wrong password"]) == {"401 UNAUTHENTICATED"}, forger.answers


def test_a_replayed_or_stale_signed_request_is_refused(cluster: LocalCluster) -> None:
    """A credential made with the cluster password is accepted once; sent again (captured on the wire), or signed
    more than 30 s from the broker's clock, it is refused."""
    create_topic(cluster, "signed")
    leader = cluster.leader_of("signed", 0)
    assert leader is not None
    target = cluster.brokers[leader]
    url = f"{target.internal_url}/internal/v1/replica/epoch-end?topic=signed&partition=0&epoch=0"
    signer = BrokerSigner((leader + 1) % 3, PASSWORD, time.time)
    with httpx.Client(timeout=10) as http:
        credential = sign(signer, "GET", url, b"")
        first = http.get(url, headers={HEADER: credential})
        assert first.status_code == 200, first.text
        replayed = http.get(url, headers={HEADER: credential})
        assert (replayed.status_code, replayed.json()["error"]["code"]) == (401, "UNAUTHENTICATED"), replayed.text
        assert "replayed" in replayed.json()["error"]["message"]
        stale_signer = BrokerSigner((leader + 1) % 3, PASSWORD, clock=lambda: time.time() - 31)
        stale = http.get(url, headers={HEADER: sign(stale_signer, "GET", url, b"")})
        assert (stale.status_code, stale.json()["error"]["code"]) == (401, "UNAUTHENTICATED"), stale.text
        assert "stale" in stale.json()["error"]["message"]
        other = cluster.brokers[(leader + 1) % 3]  # signed for the leader, sent to another broker
        moved = http.get(f"{other.internal_url}/internal/v1/replica/epoch-end?topic=signed&partition=0&epoch=0",
                         headers={HEADER: sign(signer, "GET", url, b"")})
        assert (moved.status_code, moved.json()["error"]["code"]) == (401, "UNAUTHENTICATED"), moved.text
        public = http.get(f"{target.url}/internal/v1/replica/epoch-end?topic=signed&partition=0&epoch=0",
                          headers={HEADER: sign(signer, "GET", url, b"")})
        assert (public.status_code, public.json()["error"]["code"]) == (404, "NOT_FOUND"), public.text


def test_the_peer_clients_lean_follower_fetch_is_signed_and_its_refusal_typed(cluster: LocalCluster) -> None:
    """`PeerClient.replica_fetch` goes on the lean HTTP/1.1 wire (not httpx), signing each request itself: with the
    cluster password the leader answers it, with another password the refusal comes back as UNAUTHENTICATED, and a
    broker that is not there is UNAVAILABLE (the fetcher logs both and backs off)."""
    url = cluster.brokers[0].internal_url
    fetch = ReplicaFetchRequest(replica_id=1, max_wait_ms=0, max_bytes=1024, partitions=[("absent", 0, 0, 0)])

    async def scenario() -> None:
        good = PeerClient(BrokerSigner(1, PASSWORD, time.time))
        bad = PeerClient(BrokerSigner(1, "not-" + PASSWORD, time.time))
        try:
            for _ in range(3):  # one kept-alive connection, a fresh credential each time (a replay is refused)
                answer = await good.replica_fetch(url, fetch, 1 << 20)
                assert answer.partitions == [("absent", 0, NotLeader.code, 0, 0, b"")]
            kept = [connection for idle in good._wire._idle.values() for connection in idle]
            assert len(kept) == 1, "the fetches did not share one kept-alive connection of the lean wire"
            with pytest.raises(Unauthenticated, match="does not match"):
                await bad.replica_fetch(url, fetch, 1 << 20)
            with pytest.raises(Unavailable):
                await good.replica_fetch("http://127.0.0.1:9", fetch, 1 << 20)
        finally:
            await good.close()
            await bad.close()

    asyncio.run(scenario())


# The last commit before the internal listener: brokers of this version serve broker-to-broker routes on the client
# port and register no internal port. (In the repository's history; `git archive` exports its broker package.)
PREVIOUS_VERSION = "a6b1bf7"


def previous_version_code(root: Path) -> Path:
    repository = Path(__file__).resolve().parents[2]
    root.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(repository), "archive", PREVIOUS_VERSION, "broker"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.fail(f"cannot export {PREVIOUS_VERSION} from {repository}: {archive.stderr.decode()[-500:]}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return root / "broker"


def client_port_serves_internal_routes(cluster: LocalCluster, broker_id: int) -> bool:
    """The route answers (200 from mixed/0's leader, 503 NOT_LEADER from the others) or is absent (404 NOT_FOUND)."""
    answer = httpx.get(f"{cluster.url(broker_id)}/internal/v1/replica/epoch-end",
                       params={"topic": "mixed", "partition": 0, "epoch": 0}, timeout=10)
    if answer.status_code == 404:
        assert answer.json()["error"]["code"] == "NOT_FOUND", answer.text
        return False
    assert answer.status_code == 200 or answer.json()["error"]["code"] == "NOT_LEADER", answer.text
    return True


def copies_complete(cluster: LocalCluster, history: History) -> bool:
    """Every broker's copy of every partition of `mixed` holds every acknowledged record: each fetched from its
    leader (a follower that cannot reach its leader's broker-to-broker routes stays short)."""
    for broker_id in range(3):
        with cluster.client(broker_id) as http:
            mine = {p["partition"]: p["logEndOffset"] for p in http.get("/v1/replication/status").json()["partitions"]
                    if p["topic"] == "mixed"}
        if mine != {partition: len(acked) for partition, acked in history.acked.items()}:
            return False
    return True


def test_a_rolling_upgrade_keeps_replicating_and_closes_the_client_port_after_the_last_old_broker(
        tmp_path: Path) -> None:
    """Broker 2 runs the previous version. Replication and forwarding work both ways (new brokers send it their calls
    on its client port, their client ports serve its calls), and once it restarts on this version every client port
    refuses the broker-to-broker routes."""
    old_code = previous_version_code(tmp_path / "previous")
    cluster = LocalCluster(tmp_path / "cluster", env={"GOQUEUE_REPLICATION_ACKTIMEOUT": "10s"})
    old = cluster.brokers[2]
    old.extra_env["PYTHONPATH"] = str(old_code)
    cluster.start()
    try:
        with cluster.client(0) as http:
            created = http.post("/v1/topics", json={"name": "mixed", "partitions": 3, "replicationFactor": 3})
            assert created.status_code == 201, created.text
        wait_until(lambda: all(len(cluster.partition("mixed", p)["isr"]) == 3 for p in range(3)), 30, "all in sync")
        history = History()
        for via in range(3):  # through every broker: forwarded to leaders new and old
            with cluster.client(via) as http:
                for partition in range(3):
                    values = [f"{via}-{partition}-{i}" for i in range(5)]
                    answer = http.post("/v1/topics/mixed/records", json={
                        "acks": "all", "partition": partition, "records": [{"value": v} for v in values]})
                    assert answer.status_code == 200, answer.text
                    history.record(answer.json()["offsets"], values)
        wait_until(lambda: copies_complete(cluster, history), 30, "every copy complete, the old broker's too")
        assert client_port_serves_internal_routes(cluster, 0)  # broker 2 still needs it

        old.stop()
        del old.extra_env["PYTHONPATH"]
        old.start()
        wait_until(lambda: not any(client_port_serves_internal_routes(cluster, b) for b in range(3)), 30,
                   "the client ports closed")
        forged = httpx.post(f"{cluster.url(0)}/v1/topics/mixed/records", headers={"X-GoQueue-Forwarded": "1"},
                            json={"partition": 0, "records": [{"value": "after"}]}, timeout=30)
        assert forged.status_code == 200, forged.text  # served (or forwarded) as a client's request, nothing more
        history.record(forged.json()["offsets"], ["after"])
        wait_until(lambda: copies_complete(cluster, history), 60, "every copy complete after the upgrade")
        with cluster.client(2) as http:
            history.check(consume_all(http, "mixed", 3))
    finally:
        for broker in cluster.brokers:
            if broker.running:
                broker.stop()
