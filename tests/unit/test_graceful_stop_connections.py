"""How the HTTP listeners' connections end when the broker stops gracefully (`api/http/connection_limits.py`),
driven on the protocol with a transport that records what was done to it.

Over TLS, closing a connection waits for the peer's close_notify, and a client that reads nothing on an idle
kept-alive connection (httpx's pool) never sends one. So once a connection is closing with its answer written and
every byte sent (the TLS transport's buffer and the TCP transport's under it), it is dropped after
CLOSE_NOTIFY_WAIT_S: an idle one at once, one answering after its answer, one already closing (its keep-alive ran
out) too, one with unsent bytes only once they are gone. A connection made
after the stop began (a TLS handshake that ended after uvicorn told the open connections to close) is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from transport_double import Below, RecordingTransport
from uvicorn.config import Config
from uvicorn.server import ServerState

from goqueue.api.http import connection_limits
from goqueue.api.http.client_certificate import client_certificate_name
from goqueue.api.http.connection_limits import guarded_protocol
from goqueue.config import LimitsSection

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Answering:
    """An ASGI app whose answer waits until `release` is set; it keeps the scopes it saw."""

    def __init__(self, released: bool = False) -> None:
        self.release = asyncio.Event()
        if released:
            self.release.set()
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


REQUEST = b"GET /v1/topics HTTP/1.1\r\nhost: x\r\n\r\n"


def _connection(stopping: bool = False, app: Any = None,
                transport: RecordingTransport | None = None) -> tuple[Any, RecordingTransport, ServerState]:
    protocol_class = guarded_protocol(LimitsSection(), lambda _limit: None, stopping=lambda: stopping)
    state = ServerState()
    protocol = protocol_class(Config(app or Answering()), state, {}, asyncio.get_running_loop())
    transport = transport or RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


async def eventually(predicate: Any, timeout_s: float = 5.0) -> None:
    """Positive checks wait for their condition (a loaded machine may be slow); never a fixed margin."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "the condition never came"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_limits, "STOP_POLL_S", 0.01)
    monkeypatch.setattr(connection_limits, "CLOSE_NOTIFY_WAIT_S", 0.05)


@pytest.fixture
def long_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """For checks that something has not happened yet: a wait no stall of the test can run out."""
    monkeypatch.setattr(connection_limits, "CLOSE_NOTIFY_WAIT_S", 60.0)


async def test_an_idle_connection_is_closed_then_dropped_when_its_peer_does_not_answer() -> None:
    protocol, transport, _ = _connection()
    protocol.shutdown()
    assert transport.closed  # the graceful close first: the peer may answer it
    await eventually(lambda: transport.aborted)


@pytest.mark.usefixtures("long_wait")
async def test_the_peer_has_the_whole_wait_to_answer() -> None:
    protocol, transport, _ = _connection()
    protocol.shutdown()
    await asyncio.sleep(0.3)
    assert transport.closed
    assert not transport.aborted


async def test_an_idle_connection_whose_peer_answers_is_not_dropped() -> None:
    protocol, transport, state = _connection()
    protocol.shutdown()
    protocol.connection_lost(None)  # the peer's close_notify came: the transport is gone
    assert protocol not in state.connections
    await asyncio.sleep(0.3)
    assert not transport.aborted


async def test_a_connection_answering_at_the_stop_finishes_its_answer_then_is_dropped() -> None:
    app = Answering()
    protocol, transport, _ = _connection(app=app)
    protocol.data_received(REQUEST)
    await asyncio.sleep(0)
    protocol.shutdown()
    await asyncio.sleep(0.3)
    assert not transport.closed
    assert not transport.aborted  # its answer is still being made
    app.release.set()
    await eventually(lambda: transport.closed)  # uvicorn closes it after the answer (no "connection: close")
    assert transport.written.startswith(b"HTTP/1.1 200")
    await eventually(lambda: transport.aborted)


async def test_a_connection_already_closing_at_the_stop_is_dropped_and_not_closed_twice() -> None:
    protocol, transport, _ = _connection()
    transport.close()  # its keep-alive ran out before the stop; over TLS the close waits for the peer
    protocol.shutdown()
    assert transport.closes == 1
    await eventually(lambda: transport.aborted)


def _below(transport: RecordingTransport) -> Below:
    assert transport._ssl_protocol is not None
    return transport._ssl_protocol._transport


# What keeps a closing connection from being dropped, and what lets it go: (hold, release) on (protocol, transport).
HOLDS: dict[str, tuple[Callable[[Any, RecordingTransport], None], Callable[[Any, RecordingTransport], None]]] = {
    # the end of the last answer, not yet taken by a slow reader
    "unsent bytes": (lambda _p, t: setattr(t, "unsent", 65536), lambda _p, t: setattr(t, "unsent", 0)),
    # TLS records the kernel has not taken; the TLS transport itself counts none
    "bytes in the tcp transport under tls": (lambda _p, t: setattr(_below(t), "unsent", 16384),
                                             lambda _p, t: setattr(_below(t), "unsent", 0)),
    # the transport's buffer is over its high-water mark
    "paused writes": (lambda p, _t: p.pause_writing(), lambda p, _t: p.resume_writing()),
}


@pytest.mark.parametrize("hold", list(HOLDS))
async def test_a_connection_with_bytes_still_to_send_is_dropped_only_once_they_are_sent(hold: str) -> None:
    protocol, transport, _ = _connection()
    keep, release = HOLDS[hold]
    keep(protocol, transport)
    protocol.shutdown()
    await asyncio.sleep(0.3)
    assert not transport.aborted
    release(protocol, transport)
    await eventually(lambda: transport.aborted)


async def test_a_tls_transport_whose_protocol_is_gone_is_dropped() -> None:
    protocol, transport, _ = _connection()
    transport.protocol_gone = True
    protocol.shutdown()
    await eventually(lambda: transport.aborted)


async def test_a_connection_made_after_the_stop_began_is_closed_once() -> None:
    protocol, transport, _ = _connection(stopping=True)
    await eventually(lambda: transport.closed)
    protocol.shutdown()  # uvicorn's own stop may still reach it
    assert transport.closes == 1


async def test_a_request_that_came_with_a_late_connections_handshake_is_answered_as_its_certificate_says() -> None:
    app = Answering(released=True)
    protocol, transport, _ = _connection(stopping=True, app=app, transport=RecordingTransport(tls_name=True))
    protocol.data_received(REQUEST)  # read in the handshake's last read, before the deferred close
    await eventually(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    assert client_certificate_name(app.scopes[0]) == "alice"  # answered as alice, not as nobody (a 401)
    await eventually(lambda: transport.closes == 1)


async def test_a_request_that_crosses_the_close_is_not_read() -> None:
    protocol, transport, _ = _connection()
    protocol.shutdown()
    protocol.data_received(REQUEST)  # it would start a request on a closed connection
    await asyncio.sleep(0.05)
    assert transport.written == b""


async def test_a_connection_made_before_the_stop_is_served() -> None:
    app = Answering(released=True)
    protocol, transport, _ = _connection(app=app)
    protocol.data_received(REQUEST)
    await eventually(lambda: transport.written.startswith(b"HTTP/1.1 200"))
    assert not transport.closed
