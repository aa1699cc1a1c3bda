"""Limits on the Raft port: PySyncObj's TCP transport with a connection cap, a frame cap and a first-message deadline.

PySyncObj alone accepts any number of connections, keeps a connection that never sends a byte forever (its read
timeout is checked only when the socket has an event), and buffers a frame of whatever length its 4-byte prefix
announces: one anonymous client announcing 2 GiB and streaming made the broker's memory grow without bound.
`GuardedTransport` (PySyncObj's `transportClass` setting) adds, per `TransportLimits`:

* at most `max_connections` open connections (peers and unidentified ones); a connection beyond it is closed at once;
* a connection that has not identified itself as a peer within `first_message_timeout_s` is closed;
* frames are capped *before* they are buffered: `UNIDENTIFIED_FRAME_BYTES` until the connection identified itself
  (a peer's first messages are a random key and its address: tens of bytes), `max_frame_bytes` after. A connection
  whose prefix announces more, or whose unparsed input passes twice the cap, is closed.

Known gap (issue 15): without a password, "identified" includes PySyncObj's read-only clients (first message
`readonly`), so an anonymous client gets the larger cap, and a frame's zlib payload is decompressed without a bound.
Mutual TLS or a broker credential on this port (issue 15, item 1) closes both.

Each refusal calls `on_refused(limit)` (goqueue_limit_refusals_total{port="raft"}); `open_connections()` feeds
goqueue_open_connections{port="raft"}. Runs in PySyncObj's thread.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

log = logging.getLogger(__name__)

UNIDENTIFIED_FRAME_BYTES = 64 * 1024
_FRAME_PREFIX = struct.Struct("i")  # PySyncObj's: native signed 32-bit length
_FRAME_CAP_ATTRIBUTE = "goqueue_max_frame_bytes"     # set on incoming connections: outgoing ones dial our peers
_ON_REFUSED_ATTRIBUTE = "goqueue_on_refused"


@dataclass(frozen=True)
class TransportLimits:
    max_connections: int
    max_frame_bytes: int
    first_message_timeout_s: float
    on_refused: Callable[[str], None] = lambda limit: None


def frame_too_large(buffer: bytes, cap: int) -> bool:
    """True when the unparsed input announces a frame over `cap` (or a negative one) or has grown past two caps."""
    if len(buffer) > 2 * cap + _FRAME_PREFIX.size:
        return True
    if len(buffer) < _FRAME_PREFIX.size:
        return False
    declared: int = _FRAME_PREFIX.unpack_from(buffer)[0]
    return declared < 0 or declared > cap


_original_process_read = TcpConnection._TcpConnection__processRead


def _capped_process_read(connection: Any) -> bool:
    """PySyncObj reads everything the socket holds before it parses: the cap is checked after every chunk."""
    more: bool = _original_process_read(connection)
    cap = getattr(connection, _FRAME_CAP_ATTRIBUTE, None)
    if cap is not None and frame_too_large(connection._TcpConnection__readBuffer, cap):
        log.warning("raft.frame_refused", extra={"cap_bytes": cap})
        getattr(connection, _ON_REFUSED_ATTRIBUTE)("frame_bytes")
        connection.disconnect()
        return False
    return more


# PySyncObj has no hook between reading and buffering; its read step is wrapped once, for every connection.
TcpConnection._TcpConnection__processRead = _capped_process_read


def guarded_transport(limits: TransportLimits) -> type[TCPTransport]:
    """The `transportClass` for SyncObj, bound to these limits."""

    class GuardedTransport(TCPTransport):  # type: ignore[misc]  # PySyncObj ships no type information
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._accepted_at: dict[TcpConnection, float] = {}

        def open_connections(self) -> int:
            return len(self._connections) + len(self._unknownConnections)

        def _onNewIncomingConnection(self, conn: TcpConnection) -> None:  # noqa: N802  PySyncObj's interface
            setattr(conn, _FRAME_CAP_ATTRIBUTE, UNIDENTIFIED_FRAME_BYTES)
            setattr(conn, _ON_REFUSED_ATTRIBUTE, limits.on_refused)
            if self.open_connections() >= limits.max_connections:
                limits.on_refused("connections")
                conn.disconnect()
                return
            super()._onNewIncomingConnection(conn)
            self._accepted_at[conn] = time.monotonic()

        def _onIncomingMessageReceived(self, conn: TcpConnection, message: Any) -> None:  # noqa: N802
            super()._onIncomingMessageReceived(conn, message)
            if conn not in self._unknownConnections:  # it named a peer: full-size frames from now on
                setattr(conn, _FRAME_CAP_ATTRIBUTE, limits.max_frame_bytes)
                self._accepted_at.pop(conn, None)

        def _onDisconnected(self, conn: TcpConnection) -> None:  # noqa: N802
            self._accepted_at.pop(conn, None)
            super()._onDisconnected(conn)

        def _onTick(self) -> None:  # noqa: N802
            super()._onTick()
            deadline = time.monotonic() - limits.first_message_timeout_s
            for conn, accepted in list(self._accepted_at.items()):
                if accepted < deadline and conn in self._unknownConnections:
                    limits.on_refused("header_timeout")
                    self._unknownConnections.discard(conn)
                    self._accepted_at.pop(conn, None)
                    conn.disconnect()

    return GuardedTransport
