"""The operator's https client (brokers.py `VerifiedAs`) against a real TLS server on 127.0.0.1: it trusts only
the cluster's CA bundle and checks the certificate against the pod's DNS name although it dials an IP."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from goqueue_operator.brokers import BrokerTls, BrokerUnreachable, HttpBrokerAdmin, broker_url
from goqueue_operator.pki.certs import KeyPair, issue_ca, issue_leaf

pytestmark = pytest.mark.integration

POD = "goqueue-0.goqueue-headless.apps.svc.cluster.local"
NOW = datetime.now(UTC)
CA = issue_ca("cluster CA", now=NOW, validity=timedelta(days=30))


class Leader(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"leader": 1, "host": POD, "term": 3}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """A TLS server presenting a certificate for the pod's headless DNS names, as the operator issues it."""
    leaf = issue_leaf(CA, "goqueue", dns_names=["*.goqueue-headless.apps.svc.cluster.local"], ip_addresses=[],
                      now=NOW, validity=timedelta(days=1))
    (tmp_path / "tls.crt").write_bytes(leaf.cert_pem)
    (tmp_path / "tls.key").write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Leader)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def leader(port: int, trust: KeyPair, name: str) -> int | None:
    admin = HttpBrokerAdmin(broker_url("127.0.0.1", port, tls=True), timeout_s=5,
                            tls=BrokerTls(trust.cert_pem, name))
    try:
        return asyncio.run(admin.metadata_leader())
    finally:
        admin.close()


def test_a_broker_whose_certificate_chains_to_the_bundle_and_names_the_pod_is_believed(broker: int) -> None:
    assert broker_url("127.0.0.1", broker, tls=True).startswith("https://")
    assert leader(broker, CA, POD) == 1


def test_a_certificate_from_another_ca_is_unreachable_not_trusted(broker: int) -> None:
    stranger = issue_ca("another CA", now=NOW, validity=timedelta(days=30))
    with pytest.raises(BrokerUnreachable):
        leader(broker, stranger, POD)


def test_a_certificate_that_does_not_name_the_pod_is_unreachable_not_trusted(broker: int) -> None:
    with pytest.raises(BrokerUnreachable):
        leader(broker, CA, "goqueue-0.other-headless.apps.svc.cluster.local")
