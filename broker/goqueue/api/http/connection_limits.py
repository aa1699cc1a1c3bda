"""Connection limits on the HTTP ports: a uvicorn httptools protocol that bounds open connections and request heads.

uvicorn alone answers 503 to *every* request once `limit_concurrency` connections are open — /readyz included, so
10,000 idle clients made the kubelet restart a healthy broker — and it closes no connection that never sends a
request. This protocol instead:

* counts open connections (`goqueue_open_connections{port="http"}`);
* past `limits.maxHttpConnections`, serves a connection only for the probe paths (/healthz, /readyz, /metrics), up
  to `limits.probeConnections` more (PostgreSQL's reserved connections); any other request on it answers OVERLOADED
  (503) and the connection is closed. Past both, an idle connection (waiting for a request) is closed to make room
  for the new one, so no number of idle sockets can lock the probes out; only when every connection has a request
  in flight is the new one closed before it is read;
* closes a connection whose request head is not complete within `limits.headerTimeout`: the first from when the
  connection is made (silent sockets), each later one from the first byte after the previous request (slowloris on
  a kept-alive connection; uvicorn's keep-alive timer, `limits.httpIdleTimeout`, stops at that byte);
* answers 400 and closes a connection once more than `limits.maxHeaderBytes` of an unfinished head, chunk size line
  or trailer section, or of bytes between requests, have been read (bodies do not count; a head, chunk line or
  trailers finished within one read are never refused), after any answer still due on it: a connection that closes
  after that answer (`Connection: close`, HTTP/1.0) is closed without a 400. Bodies, chunk lines and trailers have no
  timer, as with h11 (uvicorn has no body timeout).

Why httptools (llhttp, in C) and not h11: it parses a request in a fraction of h11's Python time, and a follower's
fetch, one per replicated write, is a request on the internal listener (docs/PERFORMANCE.md, issue 18 item 7).
llhttp has no bound on a head's size of its own, hence the count here.

Everything here runs on the event loop, per connection; nothing blocks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from goqueue.api.http.client_certificate import WithClientCertificate, verified_common_name
from goqueue.config import LimitsSection
from goqueue.errors import Overloaded

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CLOSE_NOTIFY_WAIT_S = 1.0  # at a graceful stop, how long a closing connection's peer has to answer the close
STOP_POLL_S = 0.1


class ProbesOnly:
    """The application a connection over the limit gets: probe paths pass, everything else is refused."""

    def __init__(self, app: Any, on_refused: Callable[[], None]) -> None:
        self.app = app
        self.on_refused = on_refused

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        self.on_refused()
        error = Overloaded("too many open connections on this port (limits.maxHttpConnections): retry later")
        payload = json.dumps(error.to_body()).encode()
        await send({"type": "http.response.start", "status": error.http_status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"), (b"retry-after", b"1")]})
        await send({"type": "http.response.body", "body": payload})


def guarded_protocol(limits: LimitsSection, on_refused: Callable[[str], None],
                     stopping: Callable[[], bool] = lambda: False) -> type[HttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=...)`, bound to these limits; `on_refused(limit)` counts
    goqueue_limit_refusals_total{port="http"}; `stopping()` says the server has begun its graceful stop."""

    class GuardedHttpProtocol(HttpToolsProtocol):
        def __init__(self, config: Config, server_state: ServerState,
                     app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self._head_timer: asyncio.TimerHandle | None = None
            self._dropping = False
            self._in_head = True  # between requests or inside a head (not yet complete)
            # Bytes read that are not body since the parser last moved on (a head complete, a chunk's size line, a
            # message's end): an unfinished head, chunk size line or trailer section, or bytes between requests. A
            # read in which the parser moved on counts nothing, so the bound is the limit plus at most one read.
            self._unparsed = 0
            self._body_bytes = 0  # of the current read
            self._moved_on = False  # in the current read

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if (common_name := verified_common_name(transport)) is not None:  # mTLS: client_certificate.py
                self.app = WithClientCertificate(self.app, common_name)
            if stopping():
                # Over TLS a connection is made only once its handshake is done, so one accepted before the stop
                # and made after it is not among those uvicorn told to close: served with keep-alive, a peer's
                # fetch loop on it would hold the stopping server for its whole grace. It is closed like the
                # others, once a request that came with the handshake has been read (it is answered, then closed).
                self.loop.call_soon(self.shutdown)
                return
            open_now = len(self.connections)
            if open_now > limits.max_http_connections + limits.probe_connections:
                on_refused("connections")
                victim = self._an_idle_connection()
                if victim is None:
                    transport.abort()  # every connection is busy: this one goes (connection_lost forgets it)
                    return
                victim.transport.abort()  # an idle one makes room: a probe always gets through
            if open_now > limits.max_http_connections:
                self.app = ProbesOnly(self.app, lambda: on_refused("connections"))
            self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_too_slow)

        def shutdown(self) -> None:
            """uvicorn's graceful stop of this connection (idle: closed; answering: closed after the answer), and
            then the drop below."""
            if not self.transport.is_closing():  # closing already: its keep-alive ran out, it was refused, or
                super().shutdown()                # connection_made closed it before uvicorn's stop reached it
            if not self._dropping:  # once: connection_made and uvicorn may both get here
                self._dropping = True
                self._drop_when_only_the_peer_holds_it(None)

        def _drop_when_only_the_peer_holds_it(self, since: float | None) -> None:
            """Over TLS, close() waits for the peer's close_notify, and a client that reads nothing on an idle
            kept-alive connection (httpx's pool, a stopping peer broker's among them) never sends one: each broker
            of a cluster stopped at once waited out its whole grace. Once a connection is closing with every byte
            written, the peer has CLOSE_NOTIFY_WAIT_S to answer; then the connection is dropped. Checked every
            STOP_POLL_S until the connection ends; uvicorn's grace bounds the whole wait."""
            if self not in self.connections:
                return
            if self.transport.is_closing() and self._all_sent():
                now = self.loop.time()
                since = now if since is None else since
                if now - since >= CLOSE_NOTIFY_WAIT_S:
                    self.transport.abort()
                    return
            else:
                since = None
            self.loop.call_later(STOP_POLL_S, self._drop_when_only_the_peer_holds_it, since)

        def _all_sent(self) -> bool:
            """Nothing waits to be sent: not in the transport, and over TLS not in the TCP transport under it
            either (asyncio's TLS transport counts only its own buffers; `_ssl_protocol` is CPython's, read
            defensively: gone once the TLS transport is closed twice, which leaves nothing to send)."""
            if self.flow.write_paused:
                return False
            try:
                if self.transport.get_write_buffer_size():
                    return False
            except AttributeError:  # CPython's TLS transport closed twice: its protocol is gone
                return True
            below = getattr(getattr(self.transport, "_ssl_protocol", None), "_transport", None)
            return below is None or not below.get_write_buffer_size()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return  # closed (at a stop, by a limit, its keep-alive out): a request that crossed the close is unread
            self._body_bytes, self._moved_on = 0, False
            super().data_received(data)
            if self.transport.is_closing():
                return  # refused by the parser (400)
            self._unparsed = 0 if self._moved_on else self._unparsed + len(data) - self._body_bytes
            if self._unparsed and self._in_head and self._head_timer is None:
                # Bytes of a next request that did not begin one (llhttp skips CR LF before a request line): they
                # stopped uvicorn's keep-alive timer, so the head timer takes over.
                self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_too_slow)
            self._refuse_if_over()

        def _refuse_if_over(self) -> None:
            if self._unparsed <= limits.max_header_bytes or self.transport.is_closing():
                return
            if self._in_head and self._answering():  # a next request's bytes, the previous answer still due:
                self.flow.pause_reading()  # that answer first; `on_response_complete` looks again
                return
            on_refused("header_bytes")
            if self._answering() and self.cycle.response_started:
                self.transport.close()  # trailers past the limit, and the app already answering: no 400 inside it
            else:
                self.send_400_response("Invalid HTTP request received.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._head_timer is None:  # a later request's head began: it gets the time the first one got
                self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_too_slow)

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._in_head, self._moved_on = False, True
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def on_body(self, body: bytes) -> None:
            self._body_bytes += len(body)
            super().on_body(body)

        def on_chunk_header(self) -> None:
            self._moved_on = True  # trailers, which come after the last (empty) chunk's, are counted from here

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._moved_on = True, True  # what comes next is the next request's head

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._refuse_if_over()  # bytes past the limit that waited for this answer

        def _answering(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _an_idle_connection(self) -> HttpToolsProtocol | None:
            """Any open connection waiting for a request (none in flight), other than this one."""
            for connection in self.connections:
                cycle = getattr(connection, "cycle", None)
                if connection is not self and isinstance(connection, HttpToolsProtocol) and (
                        cycle is None or cycle.response_complete):
                    return connection
            return None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            super().connection_lost(exc)

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if not self._in_head or self.transport.is_closing():
                return
            if self._answering():  # a request pipelined behind one still answered (a long-poll): wait for it
                self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_too_slow)
                return
            on_refused("header_timeout")
            self.transport.close()

    return GuardedHttpProtocol
