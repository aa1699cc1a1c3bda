"""How the HTTP listeners' connections end when the broker stops gracefully (`api/http/connection_limits.py`),
driven on the protocol with a transport that records what was done to it.

Over TLS, closing a connection waits for the peer's close_notify, and a client that reads nothing on an idle
kept-alive connection (httpx's pool) never sends one. So once a connection is closing with its answer written and
its buffers empty, it is dropped after CLOSE_NOTIFY_WAIT_S: an idle one at once, one answering after its answer,
one already closing (its keep-alive ran out) too, one with unsent bytes only once they are gone. A connection made
after the stop began (a TLS handshake that ended after uvicorn told the open connections to close) is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from goqueue.api.http import connection_limits
from goqueue.api.http.connection_limits import guarded_protocol
from goqueue.config import LimitsSection

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closes = 0
        self.aborted = False
        self.unsent = 0  # bytes still in the write buffer
        self.written = b""

    @property
    def closed(self) -> bool:
        return self.closes > 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closes += 1

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Answering:
    """An ASGI app whose answer waits until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _connection(stopping: bool = False, app: Any = None) -> tuple[Any, RecordingTransport, ServerState]:
    protocol_class = guarded_protocol(LimitsSection(), lambda _limit: None, stopping=lambda: stopping)
    state = ServerState()
    protocol = protocol_class(Config(app or Answering()), state, {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


WAIT_S = 0.2


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_limits, "CLOSE_NOTIFY_WAIT_S", WAIT_S)
    monkeypatch.setattr(connection_limits, "STOP_POLL_S", 0.01)


async def test_an_idle_connection_is_dropped_when_its_peer_does_not_answer_the_close() -> None:
    protocol, transport, _ = _connection()
    protocol.shutdown()
    assert transport.closed  # the graceful close first: the peer may answer it
    await asyncio.sleep(WAIT_S / 2)
    assert not transport.aborted
    await asyncio.sleep(WAIT_S)
    assert transport.aborted


async def test_an_idle_connection_whose_peer_answers_is_not_dropped() -> None:
    protocol, transport, state = _connection()
    protocol.shutdown()
    protocol.connection_lost(None)  # the peer's close_notify came: the transport is gone
    assert protocol not in state.connections
    await asyncio.sleep(2 * WAIT_S)
    assert not transport.aborted


async def test_a_connection_answering_at_the_stop_finishes_its_answer_then_is_dropped() -> None:
    app = Answering()
    protocol, transport, _ = _connection(app=app)
    protocol.data_received(b"GET /v1/topics HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0)
    protocol.shutdown()
    await asyncio.sleep(2 * WAIT_S)
    assert not transport.closed
    assert not transport.aborted  # its answer is still being made
    app.release.set()
    await asyncio.sleep(0.05)
    assert transport.written.startswith(b"HTTP/1.1 200")
    assert transport.closed  # uvicorn closes it after the answer (no "connection: close": the peer may pool it)
    await asyncio.sleep(2 * WAIT_S)
    assert transport.aborted


async def test_a_connection_already_closing_at_the_stop_is_dropped_and_not_closed_twice() -> None:
    protocol, transport, _ = _connection()
    transport.close()  # its keep-alive ran out before the stop; over TLS the close waits for the peer
    protocol.shutdown()
    assert transport.closes == 1
    await asyncio.sleep(2 * WAIT_S)
    assert transport.aborted


async def test_unsent_bytes_are_not_dropped() -> None:
    protocol, transport, _ = _connection()
    transport.unsent = 65536  # the end of the last answer, not yet taken by a slow reader
    protocol.shutdown()
    await asyncio.sleep(3 * WAIT_S)
    assert not transport.aborted
    transport.unsent = 0
    await asyncio.sleep(2 * WAIT_S)
    assert transport.aborted


async def test_a_connection_made_after_the_stop_began_is_closed_once() -> None:
    protocol, transport, _ = _connection(stopping=True)
    await asyncio.sleep(0)
    assert transport.closes == 1
    protocol.shutdown()  # uvicorn's own stop may still reach it
    assert transport.closes == 1


async def test_a_request_that_came_with_a_late_connections_handshake_is_answered_then_closed() -> None:
    app = Answering()
    app.release.set()
    protocol, transport, _ = _connection(stopping=True, app=app)
    protocol.data_received(b"GET /v1/topics HTTP/1.1\r\nhost: x\r\n\r\n")  # read in the handshake's last read
    await asyncio.sleep(0.05)
    assert transport.written.startswith(b"HTTP/1.1 200")
    assert transport.closes == 1


async def test_a_request_that_crosses_the_close_is_not_read() -> None:
    protocol, transport, _ = _connection()
    protocol.shutdown()
    protocol.data_received(b"GET /v1/topics HTTP/1.1\r\nhost: x\r\n\r\n")  # h11 would raise on it
    await asyncio.sleep(0.05)
    assert transport.written == b""


async def test_a_connection_made_before_the_stop_is_served() -> None:
    app = Answering()
    app.release.set()
    protocol, transport, _ = _connection(app=app)
    protocol.data_received(b"GET /v1/topics HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    assert transport.written.startswith(b"HTTP/1.1 200")
    assert not transport.closed
