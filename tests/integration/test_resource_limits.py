"""Resource limits (issue 13, item 3): one anonymous client cannot take a broker down, on HTTP, gRPC and Raft.

Each test starts a real broker with a limit set low and plays the hostile client over raw sockets, so what is
checked is what the wire sees: a refusal with the typed error, a connection closed by the broker, probes that keep
answering, and a broker whose memory did not take in what it refused. No timing is asserted: a socket that is never
closed fails the test by its (generous) timeout, never by a measured duration.
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import grpc
import httpx
import pytest
from broker_process import BrokerFactory, BrokerProcess
from test_http_api import create, error_code, wait_until

from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.generated import goqueue_pb2_grpc

pytestmark = pytest.mark.integration

SOCKET_TIMEOUT_S = 30.0  # a broker that never closes a socket fails the test here
MiB = 2**20


def rss_bytes(broker: BrokerProcess) -> int:
    with open(f"/proc/{broker.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def metric(broker: BrokerProcess, name: str, **labels: str) -> float:
    text = httpx.get(broker.url + "/metrics", timeout=10).text
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match and wanted <= set((match.group(1) or "").split(",")):
            total += float(match.group(2))
    return total


@contextmanager
def raw_connection(port: int) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
    try:
        yield sock
    finally:
        sock.close()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the broker closed the connection without an answer (got {data!r})"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def closed_by_peer(sock: socket.socket) -> bool:
    """Blocks until the broker closes the socket (True) or it sends something instead (False)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def request(method: str, path: str, body: bytes = b"", headers: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: broker\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: application/json\r\n{headers}\r\n").encode() + body


# -- request bodies ----------------------------------------------------------------------------------------------

def test_an_oversized_body_is_refused_before_it_is_read(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_MAXJSONREQUESTBYTES": "64KiB",
                                 "GOQUEUE_LIMITS_MAXRECORDSPERREQUEST": "100"})
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        create(http, "limited")
    path = "/v1/topics/limited/records"

    # Content-Length announces 2 GiB: the answer comes with not one byte of the body sent.
    with raw_connection(broker.port) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {2**31}\r\n\r\n".encode())
        status, headers, body = read_response(sock)
        assert (status, json.loads(body)["error"]["code"]) == (413, "REQUEST_TOO_LARGE")
        assert headers["connection"] == "close"

    # A chunked body has no length: it is cut off once it passes the limit, and what was refused is not kept.
    before = rss_bytes(broker)
    streamed = 0
    with raw_connection(broker.port) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n%s\r\n" % (MiB, b"[" * MiB)
        try:
            while streamed < 256 * MiB and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                streamed += MiB
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker answered and closed while we were still sending
        status, _, body = read_response(sock)
        assert (status, json.loads(body)["error"]["code"]) == (413, "REQUEST_TOO_LARGE")
    assert streamed < 256 * MiB, "the broker read 256 MiB of a body over a 64 KiB limit without refusing it"
    assert rss_bytes(broker) - before < 32 * MiB

    # Records per request are counted before the records are validated.
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        too_many = http.post(path, json={"records": [{"value": "v"}] * 101})
        assert (too_many.status_code, error_code(too_many)) == (413, "REQUEST_TOO_LARGE")
        assert "maxRecordsPerRequest" in too_many.json()["error"]["message"]
        assert http.post(path, json={"records": [{"value": "v"}] * 100}).status_code == 200
        assert len(http.get(f"{path.rsplit('/', 1)[0]}/partitions/0/records").json()["records"]) == 100
    assert metric(broker, "goqueue_limit_refusals_total", port="http", limit="request_bytes") >= 2
    assert metric(broker, "goqueue_limit_refusals_total", port="http", limit="records") >= 1


@pytest.mark.anyio
async def test_grpc_refuses_too_many_records_before_any_work(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_MAXRECORDSPERREQUEST": "100"})
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        create(http, "limited")
    async with grpc.aio.insecure_channel(broker.grpc_target) as channel:
        stub = goqueue_pb2_grpc.GoQueueStub(channel)
        records = [pb.Record(value=b"v")] * 101
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Produce(pb.ProduceRequest(topic="limited", records=records))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(caught.value.trailing_metadata() or ())["goqueue-error-code"] == "REQUEST_TOO_LARGE"
        answer = await stub.Produce(pb.ProduceRequest(topic="limited", records=records[:100]))
        assert len(answer.offsets) == 100


# -- connections -------------------------------------------------------------------------------------------------

# Channels to one target share their connection unless told not to: each of these opens its own.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@pytest.mark.anyio
async def test_grpc_refuses_connections_beyond_the_limit_and_closes_idle_ones(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_MAXGRPCCONNECTIONS": "1", "GOQUEUE_LIMITS_GRPCIDLETIMEOUT": "1s"})
    async with grpc.aio.insecure_channel(broker.grpc_target, options=OWN_CONNECTION) as first, \
            grpc.aio.insecure_channel(broker.grpc_target, options=OWN_CONNECTION) as second:
        await goqueue_pb2_grpc.GoQueueStub(first).ListTopics(pb.ListTopicsRequest(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await goqueue_pb2_grpc.GoQueueStub(second).ListTopics(pb.ListTopicsRequest(), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # The first one, idle, is closed by the broker: its channel falls back to IDLE (it reconnects on use).
        deadline = asyncio.get_running_loop().time() + SOCKET_TIMEOUT_S
        while first.get_state() is not grpc.ChannelConnectivity.IDLE:
            assert asyncio.get_running_loop().time() < deadline, "the idle gRPC connection was never closed"
            await asyncio.sleep(0.1)
        await goqueue_pb2_grpc.GoQueueStub(first).ListTopics(pb.ListTopicsRequest(), timeout=10)


def test_connections_beyond_the_limit_are_refused_and_probes_still_answer(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_MAXHTTPCONNECTIONS": "20", "GOQUEUE_LIMITS_PROBECONNECTIONS": "3",
                                 "GOQUEUE_LIMITS_HEADERTIMEOUT": "300s"})
    with ExitStack() as idle:
        for _ in range(20):
            idle.enter_context(raw_connection(broker.port))
        # Every ordinary slot is taken (the scrape itself is on a probe slot).
        wait_until(lambda: metric(broker, "goqueue_open_connections", port="http") >= 21, 30)
        with raw_connection(broker.port) as probe:
            probe.sendall(request("GET", "/readyz"))
            assert read_response(probe)[0] == 200
        with raw_connection(broker.port) as client:
            client.sendall(request("GET", "/v1/topics"))
            status, _, body = read_response(client)
            assert (status, json.loads(body)["error"]["code"]) == (503, "OVERLOADED")
            assert closed_by_peer(client)
        # The probe slots taken too: an idle connection is closed to make room, so the probe still gets through.
        for _ in range(3):
            idle.enter_context(raw_connection(broker.port))
        with raw_connection(broker.port) as late:
            late.sendall(request("GET", "/readyz"))
            assert read_response(late)[0] == 200
    # The idle clients left: ordinary requests are served again (once the broker has seen them go).
    def served() -> bool:
        try:
            return httpx.get(broker.url + "/v1/topics", timeout=10).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(served, 30)
    assert metric(broker, "goqueue_limit_refusals_total", port="http", limit="connections") >= 2


def test_silent_slow_and_idle_connections_are_closed(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_HEADERTIMEOUT": "1s", "GOQUEUE_LIMITS_HTTPIDLETIMEOUT": "1s"})
    with raw_connection(broker.port) as silent, raw_connection(broker.port) as slow, \
            raw_connection(broker.port) as idle:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\n")  # a head that never ends (slowloris)
        idle.sendall(request("GET", "/healthz"))
        assert read_response(idle)[0] == 200
        assert closed_by_peer(silent)
        assert closed_by_peer(slow)
        assert closed_by_peer(idle)  # keep-alive idle after its answer
    assert metric(broker, "goqueue_limit_refusals_total", port="http", limit="header_timeout") >= 2


# -- Raft --------------------------------------------------------------------------------------------------------

def test_an_anonymous_raft_peer_cannot_grow_memory_or_take_every_connection(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_MAXRAFTCONNECTIONS": "4", "GOQUEUE_LIMITS_HEADERTIMEOUT": "300s"})
    before = rss_bytes(broker)
    streamed = 0
    with raw_connection(broker.raft_port) as sock:
        sock.sendall(struct.pack("i", 2**31 - 1))  # "a 2 GiB frame follows"
        try:
            while streamed < 256 * MiB:
                sock.sendall(b"\0" * MiB)
                streamed += MiB
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_by_peer(sock)
    assert streamed < 256 * MiB, "the broker took 256 MiB of an announced 2 GiB Raft frame"
    assert rss_bytes(broker) - before < 32 * MiB
    assert metric(broker, "goqueue_limit_refusals_total", port="raft", limit="frame_bytes") >= 1

    with ExitStack() as held:
        for _ in range(4):
            held.enter_context(raw_connection(broker.raft_port))
        wait_until(lambda: metric(broker, "goqueue_open_connections", port="raft") >= 4, 30)
        with raw_connection(broker.raft_port) as fifth:
            assert closed_by_peer(fifth)  # over maxRaftConnections (the silent ones are kept 300 s)
    assert metric(broker, "goqueue_limit_refusals_total", port="raft", limit="connections") >= 1
    with httpx.Client(base_url=broker.url, timeout=30) as http:
        create(http, "after-raft-abuse")  # the metadata group is fine


def test_a_raft_connection_that_never_identifies_itself_is_closed(broker_factory: BrokerFactory) -> None:
    broker = broker_factory(env={"GOQUEUE_LIMITS_HEADERTIMEOUT": "1s"})
    with raw_connection(broker.raft_port) as silent, raw_connection(broker.raft_port) as chatty:
        chatty.sendall(struct.pack("i", 16) + b"not a peer hello")  # a frame, but never a peer's name
        assert closed_by_peer(silent)
        assert closed_by_peer(chatty)
    assert metric(broker, "goqueue_limit_refusals_total", port="raft", limit="header_timeout") >= 1
