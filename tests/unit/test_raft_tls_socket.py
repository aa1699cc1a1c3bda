"""The TLS layer under PySyncObj's connections (replication/raft_tls.py), driven the way `TcpConnection` drives a
socket: non-blocking `send`/`recv` until EAGAIN, a byte counted as sent only when `send` reports it.

Over a socketpair with small kernel buffers, so the kernel takes records in pieces: everything sent arrives, in
order; a TLS handshake that fails (another CA, no certificate, a plain peer on a TLS-only side) is an OSError that
is not EAGAIN (PySyncObj drops the connection); and, accepting both, a plain PySyncObj peer is told apart from a
TLS one by its first bytes."""

from __future__ import annotations

import datetime as dt
import errno
import os
import socket
import ssl
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from goqueue.replication.raft_tls import TlsSocket
from goqueue.security.tls import load_cert_chain_pem

pytestmark = pytest.mark.unit

NOW = dt.datetime.now(dt.UTC)
PEER = "goqueue-1.goqueue-headless.default.svc.cluster.local"


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def new(cls, name: str) -> Ca:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
                .not_valid_after(NOW + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def leaf(self, dns: str = "*.goqueue-headless.default.svc.cluster.local",
             usages: tuple[x509.ObjectIdentifier, ...] = (ExtendedKeyUsageOID.SERVER_AUTH,
                                                          ExtendedKeyUsageOID.CLIENT_AUTH)) -> tuple[bytes, bytes]:
        """A broker's certificate (both usages, as the operator issues it); clientAuth alone is a user's."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "goqueue-broker")]))
                .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
                .sign(self.key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def contexts(ca: Ca, identity: tuple[bytes, bytes] | None, trusted: Ca) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts as TlsFiles builds them for Raft: both require and verify the other's certificate."""
    server, client = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    server.verify_mode = ssl.CERT_REQUIRED
    for context in (server, client):
        if identity is not None:
            load_cert_chain_pem(context, *identity)
        context.load_verify_locations(cadata=trusted.pem())
    return server, client


def refusing_broker_closes_on_hello(sock: socket.socket) -> None:
    """What a broker without TLS does with a ClientHello: reads it as an oversized frame and hangs up."""
    for _ in range(100):
        try:
            if sock.recv(65536):
                break
        except BlockingIOError:
            continue
    sock.close()


@pytest.fixture(scope="module")
def ca() -> Ca:
    return Ca.new("cluster-ca")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel takes a TLS record in pieces
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
    yield left, right
    left.close()
    right.close()


class Endpoint:
    """What TcpConnection does with its socket: a write buffer drained by send() until EAGAIN; recv() until EAGAIN."""

    def __init__(self, sock: TlsSocket | socket.socket) -> None:
        self.sock = sock
        self.out = b""
        self.received = b""
        self.closed = False

    def step(self) -> None:
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except BlockingIOError:
                break
            if sent == 0:
                break
            self.out = self.out[sent:]
        while True:
            try:
                data = self.sock.recv(8192)
            except BlockingIOError:
                return
            if not data:
                self.closed = True
                return
            self.received += data


def run(a: Endpoint, b: Endpoint, until: int, steps: int = 20_000) -> None:
    for _ in range(steps):
        a.step()
        b.step()
        if len(a.received) >= until and len(b.received) >= until and not a.out and not b.out:
            return
    raise AssertionError(f"stalled: a got {len(a.received)}, b got {len(b.received)}, "
                         f"a owes {len(a.out)}, b owes {len(b.out)} of {until}")


def exchange(a: Endpoint, b: Endpoint, steps: int = 100) -> None:
    """Step both sides as PySyncObj's poller would, whether or not there is anything to do."""
    for _ in range(steps):
        a.step()
        b.step()


def test_everything_sent_arrives_in_order_both_ways_through_a_small_kernel_buffer(
        ca: Ca, pair: tuple[socket.socket, socket.socket]) -> None:
    server_ctx, client_ctx = contexts(ca, ca.leaf(), ca)
    dialled = Endpoint(TlsSocket(pair[0], client_ctx, server_side=False, server_hostname=PEER))
    accepted = Endpoint(TlsSocket(pair[1], server_ctx, server_side=True))
    payload_a, payload_b = os.urandom(300_000), os.urandom(200_001)
    dialled.out, accepted.out = payload_a, payload_b
    run(dialled, accepted, until=200_001)
    run(dialled, accepted, until=200_001)
    assert accepted.received == payload_a
    assert dialled.received == payload_b
    assert isinstance(dialled.sock, TlsSocket)
    assert dialled.sock.handshake_done


@pytest.mark.parametrize("problem", ["another CA", "no certificate", "a name the certificate does not carry",
                                     "a client-only certificate (a GoQueueUser's)"])
def test_a_failed_handshake_is_an_error_pysyncobj_drops_the_connection_on(
        ca: Ca, pair: tuple[socket.socket, socket.socket], problem: str) -> None:
    server_ctx, _ = contexts(ca, ca.leaf(), ca)
    stranger = Ca.new("stranger")
    hostname = PEER
    if problem == "another CA":
        _, client_ctx = contexts(stranger, stranger.leaf(), ca)
    elif problem == "no certificate":
        _, client_ctx = contexts(ca, None, ca)
    elif problem.startswith("a client-only"):
        _, client_ctx = contexts(ca, ca.leaf(usages=(ExtendedKeyUsageOID.CLIENT_AUTH,)), ca)
    else:
        _, client_ctx = contexts(ca, ca.leaf(), ca)
        hostname = "goqueue-1.elsewhere.svc"
    refusals: list[str] = []
    dialled = Endpoint(TlsSocket(pair[0], client_ctx, server_side=False, server_hostname=hostname))
    accepted = Endpoint(TlsSocket(pair[1], server_ctx, server_side=True, on_refused=refusals.append))
    dialled.out = b"x" * 100
    with pytest.raises(OSError, match=r"TLS|certificate|handshake") as raised:
        exchange(dialled, accepted, steps=1000)
    assert raised.value.errno not in (errno.EAGAIN, errno.EWOULDBLOCK)
    assert accepted.received == b""
    if problem != "a name the certificate does not carry":  # that one the dialling side refuses itself
        assert refusals
        assert ("serverAuth" if problem.startswith("a client-only") else "handshake") in refusals[0]


def plain_frame(message: bytes) -> bytes:
    return struct.pack("i", len(message)) + message


@pytest.mark.parametrize("first_message", [b"k" * 150, b"\x16" * 22, b"\x16" * 278])
def test_accepting_both_a_plain_peer_is_served_plain(
        ca: Ca, pair: tuple[socket.socket, socket.socket], first_message: bytes) -> None:
    """Even a first frame whose length byte is 0x16 (the TLS handshake type) is plain: the second byte decides."""
    server_ctx, _ = contexts(ca, ca.leaf(), ca)
    accepted_sock = TlsSocket(pair[1], server_ctx, server_side=True, sniff=True)
    dialled, accepted = Endpoint(pair[0]), Endpoint(accepted_sock)
    dialled.out = plain_frame(first_message)
    exchange(dialled, accepted, steps=10)
    assert accepted.received == plain_frame(first_message)
    accepted.out = b"answer"
    run(dialled, accepted, until=len(b"answer"))
    assert dialled.received == b"answer"
    assert accepted_sock.plain


def test_accepting_both_a_tls_peer_gets_tls(ca: Ca, pair: tuple[socket.socket, socket.socket]) -> None:
    server_ctx, client_ctx = contexts(ca, ca.leaf(), ca)
    accepted_sock = TlsSocket(pair[1], server_ctx, server_side=True, sniff=True)
    dialled = Endpoint(TlsSocket(pair[0], client_ctx, server_side=False, server_hostname=PEER))
    accepted = Endpoint(accepted_sock)
    dialled.out = b"hello over tls"
    exchange(dialled, accepted)
    assert accepted.received == b"hello over tls"
    assert not accepted_sock.plain
    assert accepted_sock.handshake_done


def test_tls_only_refuses_a_plain_peer(ca: Ca, pair: tuple[socket.socket, socket.socket]) -> None:
    server_ctx, _ = contexts(ca, ca.leaf(), ca)
    refusals: list[str] = []
    accepted = Endpoint(TlsSocket(pair[1], server_ctx, server_side=True, on_refused=refusals.append))
    pair[0].send(plain_frame(b"k" * 150))
    with pytest.raises(OSError, match="TLS handshake failed") as raised:
        accepted.step()
    assert raised.value.errno == errno.ECONNRESET
    assert accepted.received == b""
    assert refusals


def test_a_dialled_connection_takes_what_is_sent_before_its_handshake_is_done(
        ca: Ca, pair: tuple[socket.socket, socket.socket]) -> None:
    """PySyncObj sends its first message as soon as TCP connects. Left in its write buffer, it would keep PySyncObj
    subscribed for writing — a spin until the peer answers the ClientHello. It is taken at once, and arrives."""
    server_ctx, client_ctx = contexts(ca, ca.leaf(), ca)
    dialled = TlsSocket(pair[0], client_ctx, server_side=False, server_hostname=PEER)
    assert dialled.send(b"first message") == len(b"first message")  # no peer answer yet, and no EAGAIN
    assert not dialled.handshake_done
    accepted = Endpoint(TlsSocket(pair[1], server_ctx, server_side=True))
    exchange(Endpoint(dialled), accepted)
    assert accepted.received == b"first message"


def test_a_close_after_the_handshake_is_an_end_not_a_refusal(ca: Ca, pair: tuple[socket.socket, socket.socket]) -> None:
    """PySyncObj closes without a TLS close_notify: the other side reads the end (b""), and nothing is counted."""
    server_ctx, client_ctx = contexts(ca, ca.leaf(), ca)
    refusals: list[str] = []
    dialled = Endpoint(TlsSocket(pair[0], client_ctx, server_side=False, server_hostname=PEER))
    accepted = Endpoint(TlsSocket(pair[1], server_ctx, server_side=True, on_refused=refusals.append))
    dialled.out = b"hello"
    exchange(dialled, accepted)
    assert accepted.received == b"hello"
    pair[0].close()
    accepted.step()
    assert accepted.closed
    assert refusals == []


def test_only_a_peer_that_hangs_up_on_the_hello_counts_as_refusing_tls(
        ca: Ca, pair: tuple[socket.socket, socket.socket]) -> None:
    """The fallback to plain (raft_transport.py) is for a broker without TLS, which takes the ClientHello and hangs
    up without a byte; a peer that merely has not answered yet is no reason to fall back."""
    _, client_ctx = contexts(ca, ca.leaf(), ca)
    dialled = TlsSocket(pair[0], client_ctx, server_side=False, server_hostname=PEER)
    dialled.send(b"first message")
    with pytest.raises(BlockingIOError):
        dialled.recv(8192)
    assert not dialled.refused_tls  # the hello is out, the peer silent: not a refusal (a timeout ends it)
    refusing_broker_closes_on_hello(pair[1])
    with pytest.raises(OSError, match="TLS handshake"):
        dialled.recv(8192)
    assert dialled.refused_tls
