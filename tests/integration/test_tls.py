"""TLS on real brokers (issue 15, items 3, 4 and 8): HTTPS, gRPC over TLS and the internal listener with mutual TLS;
client certificates as principals; attacks refused (a certificate from another CA, an expired one, plaintext to a
TLS port, an internal call without a broker certificate); certificates renewed without a restart; unusable files
refused at start with their reason.

Each broker here serves one certificate for 127.0.0.1-127.0.0.9 and localhost, signed by a test CA
(`tls_material.py`); clients trust that CA with `ClientTls(ca_file=...)`, as `--ca` does on the CLIs.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import grpc
import httpx
import pytest
from broker_process import BrokerFactory, BrokerProcess, broker_executable
from cluster_process import LocalCluster, wait_until
from cryptography import x509
from tls_material import CLUSTER_SANS, Issued, TestCa, broker_tls_env

from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.generated import goqueue_pb2_grpc as pb_grpc
from goqueue.client.auth import Credentials
from goqueue.client.delivery import DeliveryPolicy
from goqueue.client.grpc_client import GrpcClient
from goqueue.client.http import GoQueueClient
from goqueue.client.http_batch_transport import HttpBatchTransport
from goqueue.client.producer import Producer, ProducerSettings
from goqueue.client.tls import ClientTls
from goqueue.errors import Forbidden, Unauthenticated, Unavailable
from goqueue.models import ProduceRecord, TopicCreate
from goqueue.records import RecordIn

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ADMIN_PASSWORD = "tls-admin-password"
RELOAD_S = "200ms"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("other-ca"), name="another-ca")


@pytest.fixture(scope="module")
def broker_cert(ca: TestCa) -> Issued:
    return ca.issue("broker", "goqueue-broker", sans=CLUSTER_SANS)


def served_serial(host: str, port: int, ca_file: Path) -> int:
    """The serial number of the certificate a new TLS connection to host:port is served."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection((host, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def metric(broker: BrokerProcess, name: str, ca_file: Path) -> float:
    text = httpx.get(broker.url + "/metrics", verify=ssl.create_default_context(cafile=str(ca_file))).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


# -- one broker, every listener over TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory, ca: TestCa, broker_cert: Issued) -> Iterator[BrokerProcess]:
    """Anonymous access off, an administrator `admin` (SCRAM, and a super user as User:admin for certificates)."""
    root = tmp_path_factory.mktemp("tls-broker")
    (root / "admin-password").write_text(ADMIN_PASSWORD)
    broker = BrokerProcess(root / "broker", env=broker_tls_env(
        ca, broker_cert, GOQUEUE_SECURITY_ALLOWANONYMOUS="false", GOQUEUE_SECURITY_ADMINUSER="admin",
        GOQUEUE_SECURITY_ADMINPASSWORDFILE=str(root / "admin-password"))).start()
    try:
        with GoQueueClient(broker.url, tls=ClientTls(ca.cert_file),
                           credentials=Credentials("admin", ADMIN_PASSWORD)) as admin:
            admin.create_topic(TopicCreate(name="secured", partitions=1, replication_factor=1))
        yield broker
    finally:
        broker.stop()


def test_https_produce_and_fetch_with_the_ca_as_the_clis_take_it(secure_broker: BrokerProcess, ca: TestCa) -> None:
    assert secure_broker.url.startswith("https://")
    with GoQueueClient(secure_broker.url, tls=ClientTls(ca.cert_file),
                       credentials=Credentials("admin", ADMIN_PASSWORD)) as client:
        written = client.produce("secured", [ProduceRecord(value="over tls")])
        fetched = client.fetch("secured", 0, written.offsets[0].offset)
    assert [r.value for r in fetched.records][:1] == ["over tls"]


QUICK_DELIVERY = ProducerSettings(delivery=DeliveryPolicy(timeout_s=2.0))  # an untrusted broker: no use retrying


@pytest.mark.parametrize("wire", ["httpx", "lean"])
async def test_the_batching_producer_over_https_with_scram_on_either_wire(secure_broker: BrokerProcess, ca: TestCa,
                                                                          wire: Literal["httpx", "lean"]) -> None:
    def transport(password: str) -> HttpBatchTransport:
        return HttpBatchTransport(secure_broker.url, 10, credentials=Credentials("admin", password),
                                  tls=ClientTls(ca.cert_file), wire=wire)
    async with Producer(transport(ADMIN_PASSWORD)) as producer:
        acks = [await producer.send_and_wait("secured", RecordIn(None, f"{wire}-{n}".encode(), [])) for n in range(3)]
    assert [a.offset for a in acks] == list(range(acks[0].offset, acks[0].offset + 3))
    async with Producer(transport("wrong")) as refused:
        with pytest.raises(Unauthenticated):
            await refused.send_and_wait("secured", RecordIn(None, b"no", []))
    async with Producer(HttpBatchTransport(secure_broker.url, 10, credentials=Credentials("admin", ADMIN_PASSWORD),
                                           wire=wire), QUICK_DELIVERY) as untrusting:  # the system's CAs only
        with pytest.raises(Unavailable):
            await untrusting.send_and_wait("secured", RecordIn(None, b"no", []))


def test_plaintext_to_a_tls_port_gets_no_answer(secure_broker: BrokerProcess) -> None:
    plain = secure_broker.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/v1/topics", timeout=5)


def test_a_client_that_does_not_trust_the_brokers_ca_refuses_it(secure_broker: BrokerProcess,
                                                                other_ca: TestCa) -> None:
    with GoQueueClient(secure_broker.url, tls=ClientTls(other_ca.cert_file), retries=0) as client, \
            pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
        client.list_topics()


def test_a_client_certificate_authenticates_its_cn(secure_broker: BrokerProcess, ca: TestCa) -> None:
    """CN=admin is the configured administrator (a super user): it may create topics with no password at all;
    CN=alice has no ACL: refused FORBIDDEN as User:alice — the certificate named the principal."""
    admin, alice = ca.issue("client-admin", "admin", sans=()), ca.issue("client-alice", "alice", sans=())
    with GoQueueClient(secure_broker.url, tls=ClientTls(ca.cert_file, admin.cert, admin.key)) as client:
        client.create_topic(TopicCreate(name="by-certificate", partitions=1, replication_factor=1))
    with GoQueueClient(secure_broker.url, tls=ClientTls(ca.cert_file, alice.cert, alice.key)) as client, \
            pytest.raises(Forbidden, match="User:alice"):
        client.create_topic(TopicCreate(name="alice-may-not", partitions=1, replication_factor=1))
    with GoQueueClient(secure_broker.url, tls=ClientTls(ca.cert_file)) as client, pytest.raises(Unauthenticated):
        client.list_topics()  # neither certificate nor token: anonymous, which is off


@pytest.mark.parametrize("which", ["another CA", "expired"])
def test_a_client_certificate_from_another_ca_or_expired_is_refused_in_the_handshake(
        secure_broker: BrokerProcess, ca: TestCa, other_ca: TestCa, which: str) -> None:
    if which == "another CA":
        certificate = other_ca.issue("foreign-admin", "admin", sans=())  # claims the administrator's name
    else:
        now = dt.datetime.now(dt.UTC)
        certificate = ca.issue("expired-admin", "admin", sans=(), not_before=now - dt.timedelta(days=10),
                               not_after=now - dt.timedelta(days=1))
    with GoQueueClient(secure_broker.url, tls=ClientTls(ca.cert_file, certificate.cert, certificate.key),
                       retries=0) as client, pytest.raises(Unavailable):
        client.create_topic(TopicCreate(name="never", partitions=1, replication_factor=1))
    with GoQueueClient(secure_broker.url, tls=ClientTls(ca.cert_file),
                       credentials=Credentials("admin", ADMIN_PASSWORD)) as admin:
        assert "never" not in [t.name for t in admin.list_topics()]


async def test_grpc_over_tls_and_plaintext_refused(secure_broker: BrokerProcess, ca: TestCa) -> None:
    """gRPC asks for no client certificate unless tls.clientAuth=required (grpc never merely requests one): the
    channel is TLS, the caller authenticates with SCRAM."""
    async with GrpcClient(secure_broker.grpc_target, tls=ClientTls(ca.cert_file),
                          credentials=Credentials("admin", ADMIN_PASSWORD)) as client:
        produced = await client.produce("secured", [RecordIn(None, b"grpc over tls", [])])
        assert produced.offsets
    with grpc.insecure_channel(secure_broker.grpc_target) as channel, pytest.raises(grpc.RpcError) as refused:
        pb_grpc.GoQueueStub(channel).ListTopics(pb.ListTopicsRequest(), timeout=5)  # plaintext to a TLS port
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_cli_takes_ca_and_reports_a_ca_it_cannot_trust(secure_broker: BrokerProcess, ca: TestCa,
                                                           other_ca: TestCa, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(ADMIN_PASSWORD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOQUEUE_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["goqueue-cli", "--server", secure_broker.url, "--user", "admin", "--password-file",
                               str(password), *args], capture_output=True, text=True, env=env, timeout=60,
                              check=False)

    trusted = cli("topic", "list", "-o", "json", "--ca", str(ca.cert_file))
    assert trusted.returncode == 0, trusted.stderr
    assert "secured" in trusted.stdout
    untrusted = cli("--ca", str(other_ca.cert_file), "topic", "list")
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


# -- certificate reload ----------------------------------------------------------------------------------------------


def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_refused(
        broker_factory: BrokerFactory, ca: TestCa, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    first = ca.issue("first", "goqueue-broker")
    cert, key = live / "tls.crt", live / "tls.key"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    broker = broker_factory(env=broker_tls_env(ca, Issued(cert, key), GOQUEUE_TLS_RELOADCHECKINTERVAL=RELOAD_S))
    pid, before = broker.pid, served_serial(broker.host, broker.port, ca.cert_file)

    renewed = ca.issue("renewed", "goqueue-broker")
    _swap_in(live, renewed.cert.read_bytes(), renewed.key.read_bytes())  # as the kubelet updates a Secret volume
    wait_until(lambda: served_serial(broker.host, broker.port, ca.cert_file) != before, 10, "the renewed certificate")
    after = served_serial(broker.host, broker.port, ca.cert_file)
    assert after == x509.load_pem_x509_certificate(renewed.cert.read_bytes()).serial_number
    assert broker.pid == pid
    assert metric(broker, 'goqueue_tls_reloads_total{result="loaded"}', ca.cert_file) == 1

    stranger = ca.issue("stranger", "goqueue-broker")
    _swap_in(live, renewed.cert.read_bytes(), stranger.key.read_bytes())  # a key that is not the certificate's
    wait_until(lambda: metric(broker, 'goqueue_tls_reloads_total{result="refused"}', ca.cert_file) >= 1, 10,
               "the mismatched pair refused")
    assert served_serial(broker.host, broker.port, ca.cert_file) == after  # the renewed one stays in service
    assert "tls.reload_refused" in broker.log_text()
    expiry = metric(broker, "goqueue_tls_certificate_expiry_timestamp_seconds", ca.cert_file)
    assert expiry == pytest.approx(x509.load_pem_x509_certificate(renewed.cert.read_bytes())
                                   .not_valid_after_utc.timestamp())


def _swap_in(live: Path, cert: bytes, key: bytes) -> None:
    for name, data in (("tls.crt", cert), ("tls.key", key)):
        staged = live / f".{name}.new"
        staged.write_bytes(data)
        os.replace(staged, live / name)


@pytest.mark.parametrize("problem", ["missing file", "key of another certificate", "not PEM"])
def test_unusable_tls_files_stop_the_start_with_their_reason(tmp_path: Path, ca: TestCa, problem: str) -> None:
    issued = ca.issue(f"bad-{problem.replace(' ', '-')}", "goqueue-broker")
    env = broker_tls_env(ca, issued)
    if problem == "missing file":
        env["GOQUEUE_TLS_CERTFILE"] = str(tmp_path / "absent.crt")
    elif problem == "key of another certificate":
        env["GOQUEUE_TLS_KEYFILE"] = str(ca.issue("other-key", "x").key)
    else:
        (tmp_path / "garbage.crt").write_text("not a certificate")
        env["GOQUEUE_TLS_CERTFILE"] = str(tmp_path / "garbage.crt")
    broker = BrokerProcess(tmp_path / "broker", env=env)
    proc = subprocess.run([broker_executable()], env=broker.environment(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "unusable TLS files" in proc.stderr
    assert {"missing file": "No such file", "key of another certificate": "does not match",
            "not PEM": "not a PEM certificate"}[problem] in proc.stderr


# -- three brokers: the internal listener with mutual TLS --------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, ca: TestCa, broker_cert: Issued) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("tls-cluster"),
                           env=broker_tls_env(ca, broker_cert, GOQUEUE_SECURITY_ALLOWANONYMOUS="true")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_replication_and_forwarding_run_over_mutual_tls(tls_cluster: LocalCluster, ca: TestCa) -> None:
    """acks=all needs both followers' fetches (internal listener, mTLS); a produce sent to a follower is forwarded
    to the leader over the same listener."""
    tls = ClientTls(ca.cert_file)
    with GoQueueClient(tls_cluster.url(0), tls=tls) as client:
        client.create_topic(TopicCreate(name="replicated", partitions=1, replication_factor=3))
    wait_until(lambda: len(_partition(tls_cluster, ca, "replicated")["isr"]) == 3, 30, "a full ISR")
    leader = int(_partition(tls_cluster, ca, "replicated")["leader"])
    follower = next(i for i in range(3) if i != leader)
    with GoQueueClient(tls_cluster.url(follower), tls=tls) as client:
        written = client.produce("replicated", [ProduceRecord(value=f"r{i}") for i in range(20)], acks="all")
    assert len(written.offsets) == 20
    assert all(b.ca_file for b in tls_cluster.brokers)
    for broker in tls_cluster.brokers:
        assert broker.internal_url.startswith("https://")


def test_the_internal_listener_refuses_a_caller_without_a_broker_certificate(tls_cluster: LocalCluster,
                                                                             ca: TestCa, other_ca: TestCa) -> None:
    broker = tls_cluster.brokers[0]
    trusting = ssl.create_default_context(cafile=str(ca.cert_file))
    with pytest.raises(httpx.HTTPError):  # no certificate at all: the handshake fails
        httpx.post(broker.internal_url + "/internal/v1/replica/fetch", content=b"", verify=trusting, timeout=5)
    foreign = other_ca.issue("foreign-broker", "goqueue-broker", sans=CLUSTER_SANS)
    trusting.load_cert_chain(foreign.cert, foreign.key)
    with pytest.raises(httpx.HTTPError):  # a certificate of another CA: refused too
        httpx.post(broker.internal_url + "/internal/v1/replica/fetch", content=b"", verify=trusting, timeout=5)


def _partition(cluster: LocalCluster, ca: TestCa, topic: str) -> dict[str, Any]:
    verify = ssl.create_default_context(cafile=str(ca.cert_file))
    details = httpx.get(f"{cluster.url(0)}/v1/topics/{topic}", verify=verify, timeout=10).json()["partitionDetails"]
    found: dict[str, Any] = details[0]
    return found


def test_required_client_certificates_still_let_the_probes_in(broker_factory: BrokerFactory, ca: TestCa) -> None:
    """tls.clientAuth=required: every API request needs a verified certificate; /readyz, /healthz and /metrics do
    not (the kubelet presents none)."""
    broker = broker_factory(env=broker_tls_env(ca, ca.issue("required", "goqueue-broker"),
                                                GOQUEUE_TLS_CLIENTAUTH="required"))
    verify = ssl.create_default_context(cafile=str(ca.cert_file))
    for probe in ("/readyz", "/healthz", "/metrics"):
        assert httpx.get(broker.url + probe, verify=verify, timeout=5).status_code == 200
    refused = httpx.get(broker.url + "/v1/topics", verify=verify, timeout=5)
    assert refused.status_code == 401
    assert "client certificate" in refused.json()["error"]["message"]
    client_cert = ca.issue("anyone", "anyone", sans=())
    with GoQueueClient(broker.url, tls=ClientTls(ca.cert_file, client_cert.cert, client_cert.key)) as client:
        assert client.list_topics() == []  # anonymous access is on for a lone broker; the certificate let it in


async def test_grpc_with_required_client_certificates_authenticates_the_cn(broker_factory: BrokerFactory, ca: TestCa,
                                                                          tmp_path: Path) -> None:
    """tls.clientAuth=required on gRPC: the handshake needs a certificate, and its CN is the principal — CN=admin
    (the configured administrator) may create a topic, CN=alice is FORBIDDEN as User:alice."""
    (tmp_path / "admin-password").write_text(ADMIN_PASSWORD)
    broker = broker_factory(env=broker_tls_env(
        ca, ca.issue("grpc-required", "goqueue-broker"), GOQUEUE_TLS_CLIENTAUTH="required",
        GOQUEUE_SECURITY_ALLOWANONYMOUS="false", GOQUEUE_SECURITY_ADMINUSER="admin",
        GOQUEUE_SECURITY_ADMINPASSWORDFILE=str(tmp_path / "admin-password")))
    admin, alice = ca.issue("grpc-admin", "admin", sans=()), ca.issue("grpc-alice", "alice", sans=())
    async with GrpcClient(broker.grpc_target, tls=ClientTls(ca.cert_file, admin.cert, admin.key)) as client:
        await client.create_topic(TopicCreate(name="grpc-by-certificate", partitions=1, replication_factor=1))
    async with GrpcClient(broker.grpc_target, tls=ClientTls(ca.cert_file, alice.cert, alice.key)) as client:
        with pytest.raises(Forbidden, match="User:alice"):
            await client.create_topic(TopicCreate(name="alice-may-not", partitions=1, replication_factor=1))
    async with GrpcClient(broker.grpc_target, tls=ClientTls(ca.cert_file), retries=0) as client:
        with pytest.raises(Unavailable):  # no certificate: the handshake is refused
            await client.list_topics()


def test_no_password_or_key_reaches_the_log(secure_broker: BrokerProcess, broker_cert: Issued) -> None:
    log = secure_broker.log_text()
    assert ADMIN_PASSWORD not in log
    key_body = broker_cert.key.read_text().splitlines()[1]  # a line of the private key's base64
    assert key_body not in log


@pytest.mark.parametrize("which", ["another CA", "expired"])
def test_a_cluster_member_refuses_a_client_certificate_from_another_ca_or_expired(
        tls_cluster: LocalCluster, ca: TestCa, other_ca: TestCa, which: str) -> None:
    """The same attacks on a member of the 3-broker cluster (its public listener requests client certificates)."""
    now = dt.datetime.now(dt.UTC)
    certificate = (other_ca.issue("foreign-member-client", "admin", sans=()) if which == "another CA" else
                   ca.issue("expired-member-client", "admin", sans=(), not_before=now - dt.timedelta(days=10),
                            not_after=now - dt.timedelta(days=1)))
    with GoQueueClient(tls_cluster.url(2), tls=ClientTls(ca.cert_file, certificate.cert, certificate.key),
                       retries=0) as client, pytest.raises(Unavailable):
        client.list_topics()
    with GoQueueClient(tls_cluster.url(2), tls=ClientTls(ca.cert_file)) as client:
        assert client.list_topics() is not None  # the member still serves


def test_without_a_client_ca_no_certificate_logs_anyone_in(broker_factory: BrokerFactory, ca: TestCa,
                                                         tmp_path: Path) -> None:
    """tls.clientCaFile unset: the server CA (perhaps an issuer that signs for anyone who asks) authenticates no
    client, even with CN=admin; and a CN that is not a user name (ANONYMOUS) is refused where certificates count."""
    (tmp_path / "admin-password").write_text(ADMIN_PASSWORD)
    secured = {"GOQUEUE_SECURITY_ALLOWANONYMOUS": "false", "GOQUEUE_SECURITY_ADMINUSER": "admin",
               "GOQUEUE_SECURITY_ADMINPASSWORDFILE": str(tmp_path / "admin-password")}
    env = broker_tls_env(ca, ca.issue("no-client-ca", "goqueue-broker"), **secured)
    del env["GOQUEUE_TLS_CLIENTCAFILE"]
    broker = broker_factory(env=env)
    admin = ca.issue("would-be-admin", "admin", sans=())
    with GoQueueClient(broker.url, tls=ClientTls(ca.cert_file, admin.cert, admin.key)) as client, \
            pytest.raises(Unauthenticated):
        client.list_topics()
    with_client_ca = broker_factory(env=broker_tls_env(ca, ca.issue("client-ca", "goqueue-broker"), **secured))
    anonymous = ca.issue("cn-anonymous", "ANONYMOUS", sans=())
    with GoQueueClient(with_client_ca.url, tls=ClientTls(ca.cert_file, anonymous.cert, anonymous.key)) as client, \
            pytest.raises(Unauthenticated, match="not a user name"):
        client.list_topics()



def test_a_tls_cluster_stopped_all_at_once_stops_cleanly_within_its_grace(tmp_path: Path, ca: TestCa,
                                                                          broker_cert: Issued) -> None:
    """A deleted namespace or Helm release stops every broker at once. Seen in the e2e tier: each broker closed its
    peers' idle kept-alive connections (forwarded produces, follower fetches) with a TLS close_notify and waited for
    the answer, which the stopping peers, not reading idle connections, never sent; every broker waited out its
    whole shutdown grace and logged 'timeout graceful shutdown exceeded'. The one-broker test below isolates the
    cause; this one holds the whole cluster's stop."""
    env = broker_tls_env(ca, broker_cert, GOQUEUE_SECURITY_ALLOWANONYMOUS="true", GOQUEUE_BROKER_SHUTDOWNGRACE="8s")
    cluster = LocalCluster(tmp_path / "stop", env=env).start()
    verify = ssl.create_default_context(cafile=str(ca.cert_file))

    def in_sync() -> bool:
        details = httpx.get(f"{cluster.url(0)}/v1/topics/stopping", verify=verify, timeout=10).json()
        return all(len(p["isr"]) == 3 for p in details["partitionDetails"])

    try:
        with GoQueueClient([cluster.url(i) for i in range(3)], tls=ClientTls(ca.cert_file)) as client:
            client.create_topic(TopicCreate(name="stopping", partitions=3, replication_factor=3))
            wait_until(in_sync, 30, "a full ISR everywhere")
            for n in range(20):
                client.produce("stopping", [ProduceRecord(value=f"r{n}")], acks="all")
    finally:
        for broker in cluster.brokers:  # at once; then `stop` waits for each (a second SIGTERM changes nothing)
            os.kill(broker.pid, signal.SIGTERM)
        codes = [broker.stop() for broker in cluster.brokers]
    assert codes == [0, 0, 0]
    for broker in cluster.brokers:
        assert "graceful shutdown exceeded" not in broker.log_text(), broker.log_text()[-2000:]


def test_a_tls_broker_stops_without_waiting_for_a_client_that_keeps_an_idle_connection(
        broker_factory: BrokerFactory, ca: TestCa, broker_cert: Issued) -> None:
    """httpx keeps a kept-alive connection in its pool and reads nothing on it while idle, so it never answers the
    stopping broker's TLS close_notify. The broker gives such a peer a moment (CLOSE_NOTIFY_WAIT_S), then drops the
    idle connection: it stops in about a second, not after its whole grace."""
    broker = broker_factory(env=broker_tls_env(ca, broker_cert, GOQUEUE_BROKER_SHUTDOWNGRACE="20s"))
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca.cert_file)), timeout=5) as idle_client:
        assert idle_client.get(broker.url + "/v1/topics").status_code == 200  # its connection now idles in the pool
        started = time.monotonic()
        assert broker.stop() == 0
        took = time.monotonic() - started
    assert took < 10, f"the broker waited {took:.1f} s for an idle client's close_notify"
    assert "graceful shutdown exceeded" not in broker.log_text()
