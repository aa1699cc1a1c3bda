"""Raft (port 7000) over mutual TLS on three real brokers (issue 15, items 3 and 8), and the roll into and out of it
that never loses the quorum (docs/SECURITY.md, "Raft").

One cluster goes through every step a user's (or the operator's) rolling restarts take it through, one broker at
a time, and after each restart the restarted broker must apply a topic created through another — Raft reaches it:

Brokers restart in the order 2, 1, 0, and the larger address dials (PySyncObj), so a restarted broker dials those not
restarted yet — each step covers one direction of each mixed pair, and the four steps cover both:

1. plain → offering TLS (a certificate and the CA, raft not in tls.listeners, the default): an offering broker
   dials the plain ones, they hang up on its ClientHello, and it dials them plain;
2. → TLS only (tls.listeners=internal,raft): a TLS-only broker dials offering ones, over TLS;
   then every attack on the Raft port is refused: a plain frame (counted, goqueue_limit_refusals_total{port="raft",
   limit="tls"}), a certificate from another CA, an expired one, none; a broker certificate gets the handshake; a
   renewed certificate is shown on Raft without a restart, and the brokers keep talking with it;
3. → offering TLS again (offering brokers dial TLS-only ones), then → plain (plain brokers dial offering ones, which
   tell them apart by their first bytes and serve them plain).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import socket
import ssl
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest
from cluster_process import LocalCluster, wait_until
from cryptography import x509
from tls_material import CLUSTER_SANS, Issued, TestCa

pytestmark = pytest.mark.integration

PLAIN: dict[str, str | None] = {"GOQUEUE_TLS_CERTFILE": None, "GOQUEUE_TLS_KEYFILE": None, "GOQUEUE_TLS_CAFILE": None,
                                "GOQUEUE_TLS_LISTENERS": None, "GOQUEUE_TLS_RELOADCHECKINTERVAL": None}


def phase(cert: Issued, ca: TestCa, listeners: str) -> dict[str, str | None]:
    return {"GOQUEUE_TLS_CERTFILE": str(cert.cert), "GOQUEUE_TLS_KEYFILE": str(cert.key),
            "GOQUEUE_TLS_CAFILE": str(ca.cert_file), "GOQUEUE_TLS_LISTENERS": listeners,
            "GOQUEUE_TLS_RELOADCHECKINTERVAL": "200ms"}


def roll(cluster: LocalCluster, order: list[int], env: dict[str, str | None], step: str) -> None:
    """Restart each broker in `order` into `env`; each must then apply metadata committed through another."""
    for broker_id in order:
        broker = cluster.brokers[broker_id]
        broker.stop()
        for name, value in env.items():
            if value is None:
                broker.extra_env.pop(name, None)
            else:
                broker.extra_env[name] = value
        broker.start()
        other = next(i for i in range(3) if i != broker_id)
        topic = f"{step}-{broker_id}"
        create_topic(cluster, other, topic)
        wait_until(functools.partial(topic_known, cluster, broker_id, topic), 30,
                   f"broker {broker_id} ({step}) to apply a topic created through broker {other}")


def create_topic(cluster: LocalCluster, via: int, name: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # the create may land while the restarted broker's leadership moves: retried, as a client does
        answer = httpx.post(f"{cluster.url(via)}/v1/topics", json={"name": name, "partitions": 1}, timeout=10)
        if answer.status_code in (201, 409):
            return
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)


def topic_known(cluster: LocalCluster, broker_id: int, name: str) -> bool:
    return httpx.get(f"{cluster.url(broker_id)}/v1/topics/{name}", timeout=10).status_code == 200


def refusals(cluster: LocalCluster, broker_id: int) -> float:
    text = httpx.get(f"{cluster.url(broker_id)}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("goqueue_limit_refusals_total") and 'port="raft"' in line and 'limit="tls"' in line)


def handshake(host: str, port: int, ca: TestCa, client: Issued | None) -> int:
    """A TLS handshake with the Raft port, as a peer would make it (raises ssl.SSLError / OSError when refused);
    the serial number of the certificate the broker showed."""
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    with socket.create_connection((host, port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        tls.settimeout(2)
        with contextlib.suppress(TimeoutError):  # TLS 1.3: a refused client certificate shows on the first read
            tls.recv(1)
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def plain_frame_is_dropped(host: str, port: int) -> bool:
    """A PySyncObj frame in the clear (what a broker without TLS sends first); True when the broker hung up."""
    data = zlib.compress(b"\x80\x02X\x08\x00\x00\x00readonlyq\x00.")
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(struct.pack("i", len(data)) + data)
        try:
            return conn.recv(1) == b""
        except (TimeoutError, ConnectionResetError):
            return False


def test_raft_rolls_from_plain_to_tls_only_and_back_one_broker_at_a_time(tmp_path: Path) -> None:
    ca, other_ca = TestCa(tmp_path / "ca"), TestCa(tmp_path / "other-ca", "another-ca")
    cert = ca.issue("broker", "goqueue-broker", sans=CLUSTER_SANS)
    cluster = LocalCluster(tmp_path / "cluster", env={"GOQUEUE_SECURITY_ALLOWANONYMOUS": "true"}).start()
    try:
        offering, tls_only = phase(cert, ca, ""), phase(cert, ca, "internal,raft")
        roll(cluster, [2, 1, 0], offering, "offering")
        roll(cluster, [2, 1, 0], tls_only, "tls-only")

        broker = cluster.brokers[1]
        before = refusals(cluster, 1)
        assert plain_frame_is_dropped(broker.host, broker.raft_port)
        wait_until(lambda: refusals(cluster, 1) > before, 10, "the plain connection counted as a TLS refusal")
        assert "raft.tls_refused" in broker.log_text()
        handshake(broker.host, broker.raft_port, ca, cert)  # a broker's certificate: accepted
        foreign = other_ca.issue("foreign", "goqueue-broker", sans=CLUSTER_SANS)
        expired = ca.issue("expired", "goqueue-broker", sans=CLUSTER_SANS,
                           not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10),
                           not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        for client in (foreign, expired, None):
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                handshake(broker.host, broker.raft_port, ca, client)
        create_topic(cluster, 0, "still-serving")
        wait_until(lambda: all(topic_known(cluster, i, "still-serving") for i in range(3)), 30, "every broker")

        # A renewed certificate is shown on Raft without a restart (as on every listener: the same reload).
        renewed = ca.issue("renewed", "goqueue-broker", sans=CLUSTER_SANS)
        for name, path in (("cert", cert.cert), ("key", cert.key)):
            staged = path.with_suffix(".new")
            staged.write_bytes(getattr(renewed, name).read_bytes())
            os.replace(staged, path)
        serial = x509.load_pem_x509_certificate(cert.cert.read_bytes()).serial_number
        wait_until(lambda: handshake(broker.host, broker.raft_port, ca, cert) == serial, 10, "the renewed certificate")
        create_topic(cluster, 2, "after-renewal")
        wait_until(lambda: all(topic_known(cluster, i, "after-renewal") for i in range(3)), 30, "every broker")

        roll(cluster, [2, 1, 0], offering, "offering-again")
        roll(cluster, [2, 1, 0], PLAIN, "plain-again")
    finally:
        cluster.stop()
