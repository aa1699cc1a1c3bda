"""Raft over mutual TLS: a TLS layer slipped under PySyncObj's non-blocking `TcpConnection`.

PySyncObj drives its sockets itself (a poller, `send`/`recv` until EAGAIN) and has no TLS. `TlsSocket` stands in
for the socket: it holds the real one and an `ssl.SSLObject` over memory buffers, so TLS never blocks PySyncObj's
one thread — a handshake that waits for the peer answers EAGAIN, exactly as an empty socket does. What it must keep
true for PySyncObj:

* `send` reports a byte as sent only once its ciphertext is in the kernel. When the kernel takes only part of a
  record, the last plaintext byte is held back ("owed") so PySyncObj's write buffer stays non-empty and it stays
  subscribed for writing (as it does after a partial write of a plain socket); the next `send` flushes the rest
  and reports that byte. Without this a record could sit in our buffer with nothing to make PySyncObj write again.
* `recv` returns b"" when the peer has closed (PySyncObj closes without a TLS close_notify: an EOF after the
  handshake is a normal close, not a refusal); every TLS failure (wrong CA, no certificate, a plain peer on a
  TLS-only port) is an `OSError` that is not EAGAIN, on which PySyncObj drops the connection.
* Until its handshake is done, a dialled connection takes what PySyncObj sends into a buffer of its own (up to
  `EARLY_BYTES`) and sends it once the handshake is: were it left in PySyncObj's write buffer, PySyncObj would stay
  subscribed for writing and spin for as long as the peer takes to answer the ClientHello.
* The accepting side wants a broker's certificate: signed by the cluster CA (the context) and, when it names
  extended key usages, one for serving TLS. A GoQueueUser's client certificate, signed by the same CA for clients
  only, is refused.

Offering TLS (docs/SECURITY.md, "Raft"): a broker holding a certificate but not told to require TLS on Raft (the
default, so that it can still reach a broker of a release before Raft TLS, and the step of a roll) accepts both,
telling them apart by the first two bytes (`sniff`): a TLS handshake record starts 0x16 0x03, and a plain PySyncObj
connection starts with a 4-byte length that would then be 790 bytes or more (0x0316 + k·65536), far above any
first message PySyncObj sends (a 32-byte key or an address: tens of bytes). Such a broker dials TLS first, and
plain only after a peer refused the handshake: it took the ClientHello and hung up without a byte of TLS in answer,
as a broker without TLS does (`refused_tls`; raft_transport.py).
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

TLS_HANDSHAKE_START = b"\x16\x03"  # content type handshake, protocol major version 3 (SSL 3 … TLS 1.3)
_RECORD_PLAINTEXT = 16 * 1024      # one TLS record's worth of plaintext per send
_READ_CHUNK = 64 * 1024
# What a dialled connection buffers before its handshake is done: one record's worth, which the kernel, its send
# buffer empty right after the handshake, takes whole (PySyncObj already counts it as sent: nothing would make it
# write again were any of it left here). PySyncObj's first messages are tens of bytes.
EARLY_BYTES = _RECORD_PLAINTEXT


@dataclass(frozen=True)
class RaftTls:
    """The TLS of the Raft port. `server` requires a certificate signed by the cluster CA; `client` verifies the
    peer's certificate and name and shows this broker's. Both are kept current by `TlsFiles.check()`: a connection
    made after a renewal uses the new certificate. `strict`: TLS only, both ways; otherwise (offering, the default)
    plain connections are accepted too and a peer that refuses TLS is dialled plain."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    strict: bool
    # Held while a connection is made from the contexts: `TlsFiles.check()` reloads them under it, from another
    # thread, and OpenSSL does not support changing a context while another thread makes connections from it.
    lock: threading.Lock = field(default_factory=threading.Lock)


def _serves_tls(der: bytes | None) -> bool:
    """A broker's certificate: it names no extended key usage, or serverAuth among them (brokers' certificates carry
    serverAuth and clientAuth; a GoQueueUser's, clientAuth only)."""
    if der is None:
        return False
    try:
        usages = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.SERVER_AUTH in usages


def _would_block() -> BlockingIOError:
    return BlockingIOError(errno.EAGAIN, "TLS: waiting for the peer")


class TlsRefused(ConnectionResetError):
    """The TLS layer gave up on this connection (PySyncObj drops it: the errno is not EAGAIN)."""


class TlsSocket:
    """What `TcpConnection` uses of a socket — send, recv, fileno, getsockopt, setsockopt, close — with TLS between
    it and the wire. `sniff` (accepting side, non-strict): a peer that does not start a TLS handshake is served
    plain. `on_refused(reason)` is told why a TLS connection failed before or during its handshake."""

    def __init__(self, raw: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None, sniff: bool = False,
                 on_refused: Callable[[str], None] = lambda reason: None,
                 lock: threading.Lock | None = None) -> None:
        self._raw = raw
        self._context = context
        self._lock = lock or threading.Lock()
        self._server_side = server_side
        self._hostname = server_hostname
        self._on_refused = on_refused
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None if sniff else self._start()
        self._head = b""       # bytes read while sniffing, handed on to whichever side wins
        self._pending = b""    # ciphertext the kernel has not taken yet
        self._owed = 0         # plaintext bytes already encrypted into _pending and not yet reported by send()
        self._early = b""      # plaintext sent before the handshake was done
        self._eof = False
        self._peer_bytes = 0   # bytes the peer sent (before decryption)
        self._hello_sent = False
        self.plain = False     # sniffed: the peer speaks plain PySyncObj
        self.handshake_done = False

    @property
    def refused_tls(self) -> bool:
        """A dialled peer took our ClientHello and closed without a byte in answer: a broker without TLS (its frame
        cap refuses the hello as an oversized frame). Not a refused connection, a timeout or a failed check."""
        return not self.handshake_done and self._hello_sent and self._eof and self._peer_bytes == 0
    # -- what TcpConnection calls ------------------------------------------------------------------------------------

    def fileno(self) -> int:
        return self._raw.fileno()

    def getsockopt(self, *args: int) -> int:
        return self._raw.getsockopt(*args)

    def setsockopt(self, *args: int) -> None:
        self._raw.setsockopt(*args)

    def close(self) -> None:
        self._raw.close()

    def recv(self, size: int) -> bytes:
        if self._tls is None and not self.plain:
            self._sniff()
        if self.plain:
            if self._head:
                head, self._head = self._head, b""
                return head
            return self._raw.recv(size)
        assert self._tls is not None
        self._flush()
        self._fill()
        if not self.handshake_done:
            self._handshake()
        try:
            data = self._tls.read(size)
        except ssl.SSLWantReadError:
            self._flush()
            if self._eof:
                return b""
            raise _would_block() from None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # closed, with or without close_notify
            return b""
        except ssl.SSLError as exc:
            raise self._refused(f"TLS error: {exc.reason or exc}") from None
        self._flush()
        return data

    def send(self, data: bytes | memoryview) -> int:
        if self.plain:
            return self._raw.send(data)
        if self._tls is None:  # an accepted connection whose peer has not spoken yet: nothing to answer
            raise _would_block()
        self._flush()
        if self._pending:
            raise _would_block()
        if not self.handshake_done:
            self._fill()
            with contextlib.suppress(BlockingIOError):
                self._handshake()
            if not self.handshake_done:  # taken now, sent when the handshake is done (see the module's docstring)
                room = EARLY_BYTES - len(self._early)
                if room <= 0:
                    raise _would_block()
                self._early += bytes(data[:room])
                return min(room, len(data))
        if self._owed:
            owed, self._owed = self._owed, 0
            return owed
        chunk = bytes(data[:_RECORD_PLAINTEXT])
        try:
            self._tls.write(chunk)
        except ssl.SSLError as exc:
            raise self._refused(f"TLS error: {exc.reason or exc}") from None
        self._flush()
        if self._pending:  # part of the record is still ours: hold one byte back so PySyncObj asks to write again
            self._owed = 1
            return len(chunk) - 1
        return len(chunk)

    # -- inside ------------------------------------------------------------------------------------------------------

    def _start(self) -> ssl.SSLObject:
        with self._lock:
            return self._context.wrap_bio(self._incoming, self._outgoing, server_side=self._server_side,
                                          server_hostname=None if self._server_side else self._hostname)

    def _sniff(self) -> None:
        """Decide from the first two bytes whether the peer speaks TLS; they are consumed, then handed on."""
        chunk = self._raw.recv(len(TLS_HANDSHAKE_START) - len(self._head))  # EAGAIN goes to PySyncObj as is
        if not chunk:  # closed before it said anything: let the plain path report the end
            self.plain = True
            return
        self._head += chunk
        if len(self._head) < len(TLS_HANDSHAKE_START) and TLS_HANDSHAKE_START.startswith(self._head):
            raise _would_block()
        if self._head == TLS_HANDSHAKE_START:
            self._tls = self._start()
            self._incoming.write(self._head)
            self._head = b""
        else:
            self.plain = True

    def _fill(self) -> None:
        """Move everything the kernel holds into the TLS input buffer."""
        while not self._eof:
            try:
                chunk = self._raw.recv(_READ_CHUNK)
            except BlockingIOError:
                return
            if not chunk:
                self._eof = True
                self._incoming.write_eof()
                return
            self._peer_bytes += len(chunk)
            self._incoming.write(chunk)

    def _flush(self) -> None:
        """Hand the kernel as much pending ciphertext as it takes."""
        if self._outgoing.pending:
            self._pending += self._outgoing.read()
        while self._pending:
            try:
                sent = self._raw.send(self._pending)
            except BlockingIOError:
                return
            self._hello_sent = True
            self._pending = self._pending[sent:]

    def _handshake(self) -> None:
        assert self._tls is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            if self._eof:
                raise self._refused("the peer closed the connection during the TLS handshake") from None
            raise _would_block() from None
        except ssl.SSLError as exc:
            self._flush_quietly()  # the alert tells the peer why
            raise self._refused(f"TLS handshake failed: {getattr(exc, 'verify_message', None) or exc.reason or exc}") \
                from None
        if self._server_side and not _serves_tls(self._tls.getpeercert(binary_form=True)):
            raise self._refused("the peer's certificate is not a broker's: its extended key usage is not serverAuth")
        self.handshake_done = True
        if self._early:  # what PySyncObj sent meanwhile: it already counts it as sent
            early, self._early = self._early, b""
            self._tls.write(early)
        self._flush()

    def _flush_quietly(self) -> None:
        with contextlib.suppress(OSError):
            self._flush()

    def _refused(self, reason: str) -> TlsRefused:
        self._on_refused(reason)
        return TlsRefused(errno.ECONNRESET, reason)
