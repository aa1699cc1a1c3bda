"""A minimal HTTP/1.1 client on asyncio streams, for the batching producer's hot path (`HttpBatchTransport(...,
wire="lean")`): keep-alive connections per server, Content-Length and chunked answers, TLS through an SSLContext.

Why: for a small batch httpx spends about 0.9 ms of client CPU per request on this project's machines, three times
what the broker spends on it (docs/PERFORMANCE.md), and a producer whose senders await each record pays that on
every round trip. This client does one write and a few reads per request and nothing else.

It raises the exceptions httpx raises for the same events, so a transport's failover logic is the same for both
wires: `httpx.ConnectError`/`ConnectTimeout` when nothing was sent (the caller may go to the next server at once),
`httpx.ReadTimeout` when no answer came in time, `httpx.RemoteProtocolError` when the connection broke or the answer
was not HTTP. A kept-alive connection the server has closed meanwhile (its idle timeout) is found when its answer
is empty; such a request is sent once more on a new connection, which is safe for what this carries (idempotent
batches, and SCRAM steps the broker answers afresh).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx

IDLE_S = 1.0  # a connection idle longer than this is closed rather than reused (the broker's keep-alive is ≥ 1 s)
MAX_ANSWER_BYTES = 64 * 2**20  # an answer announcing more is refused (the broker's largest answers are far smaller)
MAX_HEADERS = 100


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
                      headers: dict[str, str] | None = None, content: bytes = b"",
                      timeout_s: float) -> Answer:
        """One request to `url` (`http://host:port/path` or https); its status and body."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url}")
        target = (parts.path or "/") + ("?" + urlencode(params) if params else "")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        head = [f"{method} {target} HTTP/1.1", f"host: {parts.netloc}", f"content-length: {len(content)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content
        origin = f"{parts.scheme}://{parts.netloc}"
        try:
            return await self._exchange(origin, host, port, parts.scheme == "https", message, timeout_s, reuse=True)
        except _Stale:
            return await self._exchange(origin, host, port, parts.scheme == "https", message, timeout_s, reuse=False)

    async def _exchange(self, origin: str, host: str, port: int, tls: bool, message: bytes, timeout_s: float, *,
                        reuse: bool) -> Answer:
        connection = self._take(origin) if reuse else None
        reused = connection is not None
        deadline = time.monotonic() + timeout_s
        if connection is None:
            connection = await self._connect(host, port, tls, timeout_s)
        reader, writer = connection
        keep = False
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                writer.write(message)
                await writer.drain()
                status_line = await reader.readline()
                if not status_line:
                    if reused:
                        raise _Stale
                    raise httpx.RemoteProtocolError(f"{origin} closed the connection without answering")
                status, keep, body = await _read_answer(status_line, reader)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"{origin} did not answer within {timeout_s:.1f}s") from exc
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if reused and isinstance(exc, ConnectionError):
                raise _Stale from exc
            raise httpx.RemoteProtocolError(f"{origin}: {exc!r}") from exc
        finally:
            if not keep or self._closed:
                writer.close()
        if keep and not self._closed:
            self._idle.setdefault(origin, []).append((reader, writer, time.monotonic()))
        return Answer(status, body)

    async def _connect(self, host: str, port: int, tls: bool,
                       timeout_s: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.open_connection(
                    host, port, ssl=(self._ssl or ssl.create_default_context()) if tls else None,
                    server_hostname=host if tls else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout_s:.1f}s") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc

    def _take(self, origin: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            reader, writer, since = idle.pop()
            if now - since <= self._idle_s and not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for _, writer, _ in idle:
                writer.close()
        self._idle.clear()


async def _read_answer(status_line: bytes, reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """(status, whether the connection may be reused, body) of the answer whose first line was read."""
    version, _, rest = status_line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise ValueError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    status = int(rest[:3])
    fields: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await reader.readline()
        if line in (b"\r\n", b"\n"):
            break
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    else:
        raise ValueError(f"more than {MAX_HEADERS} header lines")
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, keep, await _read_chunked(reader)
    if "content-length" in fields:
        length = int(fields["content-length"])
        if not 0 <= length <= MAX_ANSWER_BYTES:
            raise ValueError(f"content-length {length} out of bounds")
        return status, keep, await reader.readexactly(length)
    if status in (204, 304) or 100 <= status < 200:
        return status, keep, b""
    body = await reader.read(MAX_ANSWER_BYTES + 1)  # delimited by the end of the connection
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError("answer larger than the limit")
    return status, False, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"x", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        total += size
        if total > MAX_ANSWER_BYTES:
            raise ValueError("answer larger than the limit")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
