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

With `RaftTls` (raft_tls.py) every connection also runs over mutual TLS: accepted ones require a certificate signed
by the cluster CA, dialled ones verify the peer's name and CA. Not strict (offering: the default, and the step of a
roll), accepted connections may also be plain (sniffed), and a peer that refuses the TLS handshake (takes the
ClientHello and hangs up, as a broker without TLS does) is dialled plain at once, once; the next dial tries TLS again.

Known gap: without a password or strict TLS, "identified" includes PySyncObj's read-only clients (first message
`readonly`), so an anonymous client gets the larger cap, and a frame's zlib payload is decompressed without a bound.

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

from pysyncobj.node import TCPNode
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

from goqueue.replication.raft_tls import RaftTls, TlsSocket

log = logging.getLogger(__name__)

UNIDENTIFIED_FRAME_BYTES = 64 * 1024
_FRAME_PREFIX = struct.Struct("i")  # PySyncObj's: native signed 32-bit length
_FRAME_CAP_ATTRIBUTE = "goqueue_max_frame_bytes"     # set on incoming connections: outgoing ones dial our peers
_ON_REFUSED_ATTRIBUTE = "goqueue_on_refused"
_PLAIN_REDIAL_DELAY_S = 0.1                        # after a peer refused the TLS handshake (offering only)
_SOCKET_ATTRIBUTE = "_TcpConnection__socket"       # PySyncObj's private socket: the TLS layer goes in its place


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


def guarded_transport(limits: TransportLimits, tls: RaftTls | None = None) -> type[TCPTransport]:
    """The `transportClass` for SyncObj, bound to these limits and, with `tls`, speaking TLS."""

    def refused_tls(reason: str) -> None:
        log.warning("raft.tls_refused", extra={"reason": reason})
        limits.on_refused("tls")

    class GuardedTransport(TCPTransport):  # type: ignore[misc]  # PySyncObj ships no type information
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._accepted_at: dict[TcpConnection, float] = {}
            self._dialled_tls: dict[TcpConnection, tuple[TCPNode, TlsSocket]] = {}
            self._dial_plain_once: set[TCPNode] = set()

        def open_connections(self) -> int:
            return len(self._connections) + len(self._unknownConnections)

        def _onNewIncomingConnection(self, conn: TcpConnection) -> None:  # noqa: N802  PySyncObj's interface
            setattr(conn, _FRAME_CAP_ATTRIBUTE, UNIDENTIFIED_FRAME_BYTES)
            setattr(conn, _ON_REFUSED_ATTRIBUTE, limits.on_refused)
            if self.open_connections() >= limits.max_connections:
                limits.on_refused("connections")
                conn.disconnect()
                return
            if tls is not None:
                setattr(conn, _SOCKET_ATTRIBUTE, TlsSocket(getattr(conn, _SOCKET_ATTRIBUTE), tls.server,
                                                           server_side=True, sniff=not tls.strict,
                                                           on_refused=refused_tls, lock=tls.lock))
            super()._onNewIncomingConnection(conn)
            self._accepted_at[conn] = time.monotonic()

        def _connectIfNecessarySingle(self, node: TCPNode) -> bool:  # noqa: N802
            conn = self._connections.get(node)
            before = getattr(conn, _SOCKET_ATTRIBUTE, None)
            connecting: bool = super()._connectIfNecessarySingle(node)
            dialled = getattr(conn, _SOCKET_ATTRIBUTE, None)
            if tls is None or conn is None or dialled is None or dialled is before:
                return connecting
            if node in self._dial_plain_once and not tls.strict:
                self._dial_plain_once.discard(node)
                log.info("raft.dialling_plain", extra={"peer": node.address})
                return connecting
            wrapped = TlsSocket(dialled, tls.client, server_side=False, server_hostname=node.host, lock=tls.lock,
                                on_refused=lambda reason: log.warning(
                                    "raft.peer_tls_failed", extra={"peer": node.address, "reason": reason}))
            setattr(conn, _SOCKET_ATTRIBUTE, wrapped)
            self._dialled_tls[conn] = (node, wrapped)
            return connecting

        def _onIncomingMessageReceived(self, conn: TcpConnection, message: Any) -> None:  # noqa: N802
            super()._onIncomingMessageReceived(conn, message)
            if conn not in self._unknownConnections:  # it named a peer: full-size frames from now on
                setattr(conn, _FRAME_CAP_ATTRIBUTE, limits.max_frame_bytes)
                self._accepted_at.pop(conn, None)

        def _onDisconnected(self, conn: TcpConnection) -> None:  # noqa: N802
            self._accepted_at.pop(conn, None)
            dialled = self._dialled_tls.pop(conn, None)
            if dialled is not None and tls is not None and not tls.strict and dialled[1].refused_tls:
                # A peer without TLS (an older release, or a roll's plain side): dial it plain now, then TLS
                # again next time. Only when it took the ClientHello and hung up without a byte of TLS: a refused
                # connection, a timeout or a failed certificate check is not a reason to fall back.
                # Not from inside this callback: PySyncObj is still handling the old socket's event, and a new one
                # would likely get its descriptor number and lose its subscription to the old one's handler.
                node = dialled[0]
                self._dial_plain_once.add(node)
                self._lastConnectAttempt[node] = (time.monotonic() - self._syncObj.conf.connectionRetryTime
                                                  + _PLAIN_REDIAL_DELAY_S)
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
