"""How the HTTP listeners' connections end when the broker stops gracefully (`api/http/connection_limits.py`),
driven on the protocol with a transport that records what was done to it.

Over TLS, closing a connection waits for the peer's close_notify, and a client that reads nothing on an idle
kept-alive connection (httpx's pool) never sends one, so an idle connection is dropped after CLOSE_NOTIFY_WAIT_S;
one with a request in flight is left to finish its answer. A connection made after the stop began (a TLS handshake
that ended after uvicorn told the open connections to close) is closed at once.
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
        self.closed = self.aborted = False
        self.written = b""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await asyncio.sleep(3600)  # a request stays in flight until the test ends


def _connection(stopping: bool = False) -> tuple[Any, RecordingTransport, ServerState]:
    protocol_class = guarded_protocol(LimitsSection(), lambda _limit: None, stopping=lambda: stopping)
    state = ServerState()
    protocol = protocol_class(Config(_app), state, {}, asyncio.get_running_loop())
    transport = RecordingTransport()
    protocol.connection_made(transport)
    return protocol, transport, state


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_limits, "CLOSE_NOTIFY_WAIT_S", 0.05)


async def test_an_idle_connection_is_dropped_when_its_peer_does_not_answer_the_close() -> None:
    protocol, transport, _ = _connection()
    protocol.shutdown()
    assert transport.closed
    assert not transport.aborted
    await asyncio.sleep(0.2)
    assert transport.aborted


async def test_an_idle_connection_whose_peer_answers_is_not_dropped() -> None:
    protocol, transport, state = _connection()
    protocol.shutdown()
    protocol.connection_lost(None)  # the peer's close_notify came: the transport is gone
    assert protocol not in state.connections
    await asyncio.sleep(0.2)
    assert not transport.aborted


async def test_a_connection_with_a_request_in_flight_is_left_to_answer() -> None:
    protocol, transport, _ = _connection()
    protocol.data_received(b"GET /v1/topics HTTP/1.1\r\nhost: x\r\n\r\n")
    await asyncio.sleep(0)
    assert protocol.cycle is not None
    assert not protocol.cycle.response_complete
    protocol.shutdown()
    await asyncio.sleep(0.2)
    assert not transport.closed
    assert not transport.aborted
    assert protocol.cycle.keep_alive is False  # closed after its answer (uvicorn's own rule)
    for task in list(protocol.tasks):
        task.cancel()


async def test_a_connection_made_after_the_stop_began_is_closed_at_once() -> None:
    protocol, transport, _ = _connection(stopping=True)
    assert transport.closed
    protocol.shutdown()  # uvicorn may still tell it to close: nothing happens twice
    assert transport.closed


async def test_a_connection_made_before_the_stop_is_served() -> None:
    _, transport, _ = _connection(stopping=False)
    assert not transport.closed
    assert not transport.aborted
