"""How the HTTP listeners bound request heads (`api/http/connection_limits.py`), driven on the protocol with a
transport that records what was done to it.

llhttp (httptools) has no bound on a head's size, so the protocol counts what it reads that is not body since the
parser last moved on (an unfinished head, chunk size line or trailer section, bytes between requests) and answers 400
past `limits.maxHeaderBytes`, after any answer still being sent; a request whose head fits is served however large
its body, even when head and body come in one read, and however many chunks carry it. `limits.headerTimeout` bounds
the first head from when the connection is made and each later one on a kept-alive connection from the first byte
after the previous request (uvicorn's keep-alive timer stops at that byte, so a slow head, or CR LF alone, which
llhttp skips before a request line, would otherwise hold the connection for good).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from transport_double import RecordingTransport
from uvicorn.config import Config
from uvicorn.server import ServerState

from goqueue.api.http.connection_limits import guarded_protocol
from goqueue.config import LimitsSection

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

HEAD_LIMIT = 4096
HEAD_TIMEOUT_S = 0.2


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Held:
    """An ASGI app whose answer waits until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.bodies: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.release.wait()
        self.bodies.append(0)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


class Echo:
    """An ASGI app that answers 200 with the size of the body it read."""

    def __init__(self) -> None:
        self.bodies: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        self.bodies.append(size)
        answer = str(size).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


def _connection(app: Echo | Held) -> tuple[Any, RecordingTransport, list[str]]:
    refused: list[str] = []
    limits = LimitsSection.model_validate({"maxHeaderBytes": HEAD_LIMIT, "headerTimeout": f"{HEAD_TIMEOUT_S}s",
                                           "httpIdleTimeout": "60s"})
    protocol_class = guarded_protocol(limits, refused.append)
    protocol = protocol_class(Config(app, timeout_keep_alive=60), ServerState(), {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, refused


async def eventually(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "the condition never came"
        await asyncio.sleep(0.01)


async def test_a_head_that_grows_past_the_limit_unfinished_is_refused_and_its_connection_closed() -> None:
    app = Echo()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"GET /v1/topics HTTP/1.1\r\nhost: x\r\nx-padding: ")
    for _ in range(HEAD_LIMIT // 512 + 1):
        protocol.data_received(b"a" * 512)
    assert transport.written.startswith(b"HTTP/1.1 400")
    assert transport.closed
    assert refused == ["header_bytes"]
    assert app.bodies == []


@pytest.mark.parametrize("first_read", [HEAD_LIMIT * 20, 100], ids=["body in the head's read", "body read later"])
async def test_a_head_within_the_limit_is_served_however_large_its_body(first_read: int) -> None:
    app = Echo()
    protocol, transport, refused = _connection(app)
    body = b"b" * (HEAD_LIMIT * 20)
    protocol.data_received(b"POST /v1/x HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body)
                           + body[:first_read])
    for start in range(first_read, len(body), 1024):
        protocol.data_received(body[start:start + 1024])
    await eventually(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    assert app.bodies == [len(body)]
    assert refused == []
    assert not transport.closed


@pytest.mark.parametrize("next_bytes", [b"GET /b HTTP/1.1\r\nho", b"\r\n"], ids=["slowloris", "line end alone"])
async def test_a_kept_alive_connections_next_head_must_be_complete_within_the_header_timeout(next_bytes: bytes) -> None:
    """A head that never ends, or CR LF alone (llhttp skips it without beginning a request): either stops uvicorn's
    keep-alive timer, so the header timer must take over."""
    app = Echo()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
    await eventually(lambda: app.bodies == [0])
    await asyncio.sleep(HEAD_TIMEOUT_S * 2)
    assert not transport.closed  # between requests the keep-alive timer rules (60 s here), not the head timer
    protocol.data_received(next_bytes)
    await eventually(lambda: transport.closed)
    assert refused == ["header_timeout"]


async def test_a_kept_alive_connections_next_request_sent_in_pieces_in_time_is_served() -> None:
    app = Echo()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
    await eventually(lambda: app.bodies == [0])
    protocol.data_received(b"GET /b HTTP/1.1\r\nho")
    await asyncio.sleep(HEAD_TIMEOUT_S / 4)
    protocol.data_received(b"st: x\r\n\r\n")
    await eventually(lambda: app.bodies == [0, 0])
    await asyncio.sleep(HEAD_TIMEOUT_S * 2)
    assert not transport.closed
    assert refused == []


async def test_trailers_that_grow_past_the_limit_are_refused() -> None:
    app = Echo()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"POST /v1/x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
    for i in range(HEAD_LIMIT // 512 + 1):
        protocol.data_received(b"x-trailer-%04d: " % i + b"v" * 490 + b"\r\n")
    assert transport.written.startswith(b"HTTP/1.1 400")
    assert transport.closed
    assert refused == ["header_bytes"]


async def test_a_chunked_body_of_many_chunks_is_served_whatever_its_chunk_lines_add_up_to() -> None:
    app = Echo()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"POST /v1/x HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
    chunks = HEAD_LIMIT  # their size lines and ends alone are 5 times the limit
    for _ in range(chunks):
        protocol.data_received(b"a\r\n0123456789\r\n")
    protocol.data_received(b"0\r\n\r\n")
    await eventually(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    assert app.bodies == [10 * chunks]
    assert refused == []


async def test_bytes_past_the_limit_behind_a_request_being_answered_wait_for_its_answer() -> None:
    app = Held()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"GET /a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    protocol.data_received(b"j" * (HEAD_LIMIT + 1))  # ignored by the parser (the connection closes after /a)
    await asyncio.sleep(0.05)
    assert transport.written == b""
    assert protocol.flow.read_paused  # nothing more is read meanwhile
    app.release.set()
    await eventually(lambda: transport.closed)
    assert transport.written.startswith(b"HTTP/1.1 200")  # its answer, not a 400 in its place
    assert refused == []


async def test_a_kept_alive_next_head_past_the_limit_behind_an_answer_is_refused_once_that_answer_is_sent() -> None:
    app = Held()
    protocol, transport, refused = _connection(app)
    protocol.data_received(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
    protocol.data_received(b"GET /b HTTP/1.1\r\nx-padding: " + b"p" * HEAD_LIMIT)  # pipelined, unfinished
    await asyncio.sleep(0.05)
    assert refused == []
    app.release.set()
    await eventually(lambda: transport.closed)
    assert transport.written.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 400" in transport.written  # after /a's answer, not in its place
    assert refused == ["header_bytes"]
