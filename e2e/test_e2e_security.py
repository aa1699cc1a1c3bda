"""The attacks of issue 15 (item 8) against an operator-run cluster, as someone on the cluster network would try
them — anonymous admin and produce calls, a consumer reading a topic its ACL lacks, a replayed SCRAM exchange, a
forged replica fetch on the internal port (refused in the mutual-TLS handshake the operator's brokers use between
themselves by default), an oversized Raft frame and a pickled call on the Raft port — each refused with its typed
error while the cluster keeps serving. Certificates (another CA, expired) are refused on a one-broker cluster with
`spec.tls.enabled`."""

from __future__ import annotations

import base64
import datetime as dt
import json
import pickle
import secrets
import socket
import ssl
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from backends import Backend
from operator_kube import OPERATOR_USER, is_true
from tls_material import Issued, TestCa
from workloads import GoQueueCluster, create_namespace, delete_namespace

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.errors import Forbidden
from goqueue.models import ProduceRecord, TopicCreate
from goqueue_harness.waiting import wait_until

pytestmark = pytest.mark.e2e

INTERNAL_PORT, RAFT_PORT = 8081, 7000
READY_S = 120


def _error_code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["error"]["code"])


def test_anonymous_calls_are_refused(cluster: GoQueueCluster) -> None:
    url = cluster.url(0)
    with cluster.client() as admin:
        admin.create_topic(TopicCreate(name="sec-anon", partitions=1, replication_factor=3))
    attempts = [httpx.post(f"{url}/v1/topics", json={"name": "sec-anon-2", "partitions": 1}, timeout=10),
                httpx.delete(f"{url}/v1/topics/sec-anon", timeout=10),
                httpx.post(f"{url}/v1/admin/cluster/rebalance", timeout=10),
                httpx.post(f"{url}/v1/topics/sec-anon/records", json={"records": [{"value": "x"}]}, timeout=10)]
    assert [(r.status_code, _error_code(r)) for r in attempts] == [(401, "UNAUTHENTICATED")] * len(attempts)
    with cluster.client() as admin:
        assert admin.describe_topic("sec-anon").partition_details[0].high_watermark == 0  # nothing was written
        assert "sec-anon-2" not in [t.name for t in admin.list_topics()]


def _user(cluster: GoQueueCluster, name: str, acls: list[dict[str, Any]]) -> Credentials:
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps({
        "apiVersion": "goqueue.io/v1alpha1", "kind": "GoQueueUser", "metadata": {"name": name},
        "spec": {"clusterRef": {"name": cluster.name}, "authentication": {"type": "scram"},
                 "authorization": {"acls": acls}}}))
    cluster.wait_resource("goqueueuser", name, timeout_s=READY_S)
    secret = cluster.get("secret", name)
    assert secret is not None, f"Secret {name}"
    return Credentials(name, base64.b64decode(secret["data"]["password"]).decode())


def test_a_consumer_may_read_only_what_its_acl_names(cluster: GoQueueCluster) -> None:
    with cluster.client() as admin:
        for name in ("sec-public", "sec-private"):
            admin.create_topic(TopicCreate(name=name, partitions=1, replication_factor=3))
            admin.produce(name, [ProduceRecord(value=f"in {name}")])
    reader = _user(cluster, "sec-reader", [{"resource": {"type": "topic", "name": "sec-public"},
                                            "operations": ["consume"]}])
    with GoQueueClient(cluster.url(1), timeout_s=10, credentials=reader) as client:
        assert [r.value for r in client.fetch("sec-public", 0, 0).records] == ["in sec-public"]
        with pytest.raises(Forbidden, match="User:sec-reader"):
            client.fetch("sec-private", 0, 0)
        with pytest.raises(Forbidden):
            client.produce("sec-public", [ProduceRecord(value="not allowed")])


def test_a_replayed_scram_exchange_is_refused(cluster: GoQueueCluster) -> None:
    user = _user(cluster, "sec-replay", [])
    url = cluster.url(0)
    exchange = user.exchange()
    started = httpx.post(f"{url}/v1/auth/scram/start", json={"clientFirst": exchange.client_first}, timeout=10)
    assert started.status_code == 200, started.text
    body = started.json()
    final = {"exchangeId": body["exchangeId"], "clientFinal": exchange.respond(body["serverFirst"])}
    assert httpx.post(f"{url}/v1/auth/scram/finish", json=final, timeout=10).status_code == 200
    replayed = httpx.post(f"{url}/v1/auth/scram/finish", json=final, timeout=10)
    assert (replayed.status_code, _error_code(replayed)) == (401, "UNAUTHENTICATED")


def test_a_forged_replica_fetch_on_the_internal_port_is_refused(cluster: GoQueueCluster) -> None:
    """The operator's brokers talk to each other over mutual TLS by default (spec.tls.internal): a caller without a
    broker certificate gets no answer at all, whether it trusts the cluster CA (public: clients mount it) or speaks
    plain HTTP. (Without internal TLS the broker credential answers 401 UNAUTHENTICATED: test_internal_listener.py.)"""
    host, port = cluster.backend.pod_endpoint(cluster.namespace, f"{cluster.name}-0", INTERNAL_PORT)
    secret = json.loads(cluster.kubectl("get", "secret", f"{cluster.name}-cluster-ca-cert", "-o", "json"))
    trusting = ssl.create_default_context(cadata=base64.b64decode(secret["data"]["ca.crt"]).decode())
    trusting.check_hostname = False  # reached through a port-forward on kind: 127.0.0.1 is not the pod's name
    for scheme, verify in (("https", trusting), ("http", True)):
        with pytest.raises(httpx.TransportError):
            httpx.post(f"{scheme}://{host}:{port}/internal/v1/replica/fetch", content=b"\x94\x01\x00\x00\x90",
                       headers={"content-type": "application/vnd.goqueue.replica+msgpack"}, timeout=10,
                       verify=verify)
    with cluster.client() as admin:  # and the cluster keeps serving
        assert admin.cluster_status().healthy


class CreatesAFile:
    """Unpickling this would call open(path, "w"): evidence, if the Raft port ever ran code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (self.path, "w")


def _raft_frame(host: str, port: int, frame: bytes) -> bool:
    """Send `frame`; True when the broker closed the connection on it (a reset counts: it may close while the
    rest of an oversized frame is still arriving)."""
    with socket.create_connection((host, port), timeout=10) as conn:
        try:
            conn.sendall(frame)
            return conn.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def test_the_raft_port_runs_no_pickled_call_and_refuses_an_oversized_frame(cluster: GoQueueCluster) -> None:
    pod = f"{cluster.name}-1"
    host, port = cluster.backend.pod_endpoint(cluster.namespace, pod, RAFT_PORT)
    marker = f"/tmp/goqueue-e2e-pwned-{secrets.token_hex(4)}"
    payload = zlib.compress(pickle.dumps(CreatesAFile(marker), protocol=2))
    assert _raft_frame(host, port, struct.pack("i", len(payload)) + payload)
    assert _raft_frame(host, port, struct.pack("i", 2**31 - 1) + b"\0" * 65536)  # announces 2 GiB
    # Where the broker runs: a container on kind, a process of this machine on the local backend.
    if cluster.backend.name == "kind":
        in_pod = cluster.backend.kubectl("exec", "-n", cluster.namespace, pod, "-c", "broker", "--", "sh", "-c",
                                         f"test -e {marker} && echo RAN || true")
    else:
        in_pod = "RAN" if Path(marker).exists() else ""
    assert "RAN" not in in_pod, "the Raft port ran code sent by an anonymous peer"
    with cluster.client(1) as client:
        assert client.list_topics() is not None  # still serving


def test_certificates_from_another_ca_or_expired_are_refused(backend: Backend, operator_installed: str,
                                                              tmp_path: Path) -> None:
    """A one-broker cluster with spec.tls.enabled in a namespace of its own: a client certificate signed by the
    cluster's CA (CN goqueue-operator) is let in; one of another CA, and an expired one of the cluster's own CA,
    end the handshake. The broker is reached at its pod address and verified as its DNS name."""
    namespace = create_namespace(backend, "sec-tls")
    name = "tls"
    try:
        tls_cluster = GoQueueCluster(backend, namespace, name)
        tls_cluster.apply(replicas=1, tls={"enabled": True})
        wait_until(lambda: (tls_cluster.status().get("readyReplicas") == 1
                            and is_true(tls_cluster.get(), "Ready")), READY_S, message="the TLS cluster Ready")
        ca_secret = tls_cluster.get("secret", f"{name}-cluster-ca")
        assert ca_secret is not None
        cluster_ca = TestCa.from_pem(tmp_path / "cluster-ca", base64.b64decode(ca_secret["data"]["ca.crt"]),
                                     base64.b64decode(ca_secret["data"]["ca.key"]))
        foreign = TestCa(tmp_path / "foreign", name="foreign-ca").issue("foreign", OPERATOR_USER, sans=())
        now = dt.datetime.now(dt.UTC)
        expired = cluster_ca.issue("expired", OPERATOR_USER, sans=(), not_before=now - dt.timedelta(days=9),
                                   not_after=now - dt.timedelta(days=1))
        valid = cluster_ca.issue("valid", OPERATOR_USER, sans=())
        host, port = backend.pod_endpoint(namespace, f"{name}-0", 8080)
        as_name = f"{name}-0.{name}-headless.{namespace}.svc"

        def topics(certificate: Issued) -> httpx.Response:
            context = ssl.create_default_context(cafile=str(cluster_ca.cert_file))
            context.load_cert_chain(certificate.cert, certificate.key)
            with httpx.Client(verify=context, timeout=10) as http:
                return http.get(f"https://{host}:{port}/v1/topics", extensions={"sni_hostname": as_name})

        assert topics(valid).status_code == 200  # the control: the CA's own certificate, the administrator's CN
        for refused in (foreign, expired):
            with pytest.raises(httpx.HTTPError):
                topics(refused)
    finally:
        delete_namespace(backend, namespace)
