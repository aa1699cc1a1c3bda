"""A minimal HTTP/1.1 client on asyncio streams, for the two calls made once per write: followers' fetches
(`replication/peers.py`) and the batching producer's hot path (`HttpBatchTransport`'s default wire). Keep-alive
connections per server, Content-Length and chunked answers, TLS through an SSLContext.

Why: for a small batch httpx spends about 0.9 ms of client CPU per request on this project's machines, two to three
times what the broker spends on it (docs/PERFORMANCE.md), and a producer whose senders await each record pays that on
every round trip. This client does one write and a few reads per request and nothing else.

It raises the exceptions httpx raises for the same events, so a transport's failover logic is the same for both
wires: `httpx.ConnectError`/`ConnectTimeout` when nothing was sent (the caller may go to the next server at once),
`httpx.ReadTimeout` when no answer came in time, `httpx.RemoteProtocolError` when the connection broke or the answer
was not HTTP. A kept-alive connection the server closed while it was idle (its keep-alive timeout) shows as one
that ends, or is reset, before the first line of an answer; the request is then sent once more on a new connection
when the caller allows it (`resend_if_stale`): the producer's stamped batches, which the broker writes once however
often they arrive, and SCRAM steps, which it answers afresh. Unstamped batches (acks=0) are not resent: the end
could also be a broker that wrote the batch and died before answering.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx

IDLE_S = 1.0  # a connection idle longer than this is closed rather than reused (the broker's keep-alive is ≥ 1 s)
MAX_ANSWER_BYTES = 64 * 2**20  # an answer larger is refused unless the request allows more (`max_answer_bytes`)
MAX_HEADERS = 100
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_UNSAFE = re.compile(r"[\r\n\0]")  # what would end a request line or header early (header injection)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


class _Stale(Exception):
    """A reused connection closed before any byte of the answer: the server dropped it while it was idle."""


class Http1Pool:
    def __init__(self, ssl_context: ssl.SSLContext | None = None, idle_s: float = IDLE_S) -> None:
        self._ssl = ssl_context
        self._idle_s = idle_s
        self._idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]]] = {}
        self._closed = False

    async def request(self, method: str, url: str, *, params: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None, content: bytes = b"", timeout_s: float,
                      resend_if_stale: bool = True, max_answer_bytes: int = MAX_ANSWER_BYTES) -> Answer:
        """One request to `url` (`http://host:port/path` or https); its final status and body. An answer larger than
        `max_answer_bytes` is refused, whatever its framing."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url}")
        target = (parts.path or "/") + ("?" + urlencode(params) if params else "")
        authority = parts.netloc.rpartition("@")[2]  # never a user:password@ of the URL
        head = [f"{method} {target} HTTP/1.1", f"host: {authority}", f"content-length: {len(content)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if any(_UNSAFE.search(line) for line in head):
            raise httpx.LocalProtocolError(f"a line of the request to {url} holds CR, LF or NUL")
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content
        origin = f"{parts.scheme}://{authority}"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        deadline = time.monotonic() + timeout_s  # one for both attempts: a resend does not extend it
        where = (origin, parts.hostname, port, parts.scheme == "https", max_answer_bytes)
        try:
            return await self._exchange(*where, message, deadline, reuse=True)
        except _Stale as stale:
            if not resend_if_stale:
                raise httpx.RemoteProtocolError(f"{origin} closed a kept-alive connection before answering; "
                                                "not resent (the request is not safe to repeat)") from stale
            return await self._exchange(*where, message, deadline, reuse=False)

    async def _exchange(self, origin: str, host: str, port: int, tls: bool, limit: int, message: bytes,
                        deadline: float, *, reuse: bool) -> Answer:
        connection = self._take(origin) if reuse else None
        reused = connection is not None
        if connection is None:
            connection = await self._connect(host, port, tls, deadline)
        reader, writer = connection
        keep = answered = False
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                writer.write(message)
                await writer.drain()
                status_line = await reader.readline()
                if not status_line:
                    if reused:
                        raise _Stale
                    raise httpx.RemoteProtocolError(f"{origin} closed the connection without answering")
                answered = True
                status, keep, body = await _read_answer(status_line, reader, limit)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"{origin} did not answer in time") from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if reused and not answered and isinstance(exc, ConnectionError):
                raise _Stale from exc
            raise httpx.RemoteProtocolError(f"{origin}: {exc!r}") from exc
        finally:
            if not keep or self._closed:
                writer.close()  # also after a timeout or a cancellation: an answer may still be on its way
        if keep and not self._closed:
            self._idle.setdefault(origin, []).append((reader, writer, time.monotonic()))
        return Answer(status, body)

    async def _connect(self, host: str, port: int, tls: bool,
                       deadline: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                return await asyncio.open_connection(host, port, ssl=self._context() if tls else None,
                                                     server_hostname=host if tls else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took too long") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()  # the system's CAs, loaded once
        return self._ssl

    def _take(self, origin: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently used live connection to `origin`; expired or closed ones are closed and dropped."""
        now = time.monotonic()
        fresh = []
        for reader, writer, since in self._idle.get(origin, []):
            if now - since <= self._idle_s and not reader.at_eof() and not writer.is_closing():
                fresh.append((reader, writer, since))
            else:
                writer.close()
        if not fresh:
            self._idle.pop(origin, None)
            return None
        reader, writer, _ = fresh.pop()
        self._idle[origin] = fresh
        return reader, writer

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for _, writer, _ in idle:
                writer.close()
        self._idle.clear()


async def _read_answer(status_line: bytes, reader: asyncio.StreamReader, limit: int) -> tuple[int, bool, bytes]:
    """(status, whether the connection may be reused, body) of the final answer whose first line was read;
    interim (1xx) answers before it are read past."""
    while True:
        version, _, rest = status_line.decode("latin-1").partition(" ")
        if not version.startswith("HTTP/1.") or not _DIGITS.fullmatch(rest[:3]):
            raise ValueError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        status = int(rest[:3])
        fields = await _read_fields(reader)
        if status == 101:
            raise ValueError("the server switched protocols")
        if not 100 <= status < 200:
            break
        status_line = await reader.readline()  # an interim answer (100 Continue, 103 Early Hints): the next one
        if not status_line:
            raise asyncio.IncompleteReadError(b"", None)
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, keep, await _read_chunked(reader, limit)
    if "content-length" in fields:
        length = fields["content-length"]
        if not _DIGITS.fullmatch(length) or int(length) > limit:
            raise ValueError(f"content-length {length[:30]!r} is not a size up to {limit}")
        return status, keep, await reader.readexactly(int(length))
    if status in (204, 304):
        return status, keep, b""
    return status, False, await _read_to_end(reader, limit)  # delimited by the end of the connection


async def _read_fields(reader: asyncio.StreamReader) -> dict[str, str]:
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length" and fields.get(name, value) != value:
            raise ValueError("conflicting content-length headers")
        fields[name] = value
    raise ValueError(f"more than {MAX_HEADERS} header lines")


async def _read_to_end(reader: asyncio.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
        if total > limit:
            raise ValueError("answer larger than the limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_chunked(reader: asyncio.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_field = (await reader.readline()).split(b";")[0].strip().decode("latin-1")
        if not _HEX.fullmatch(size_field):
            raise ValueError(f"bad chunk size {size_field[:20]!r}")
        size = int(size_field, 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > limit:
            raise ValueError("answer larger than the limit")
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("a chunk is not followed by CRLF")
