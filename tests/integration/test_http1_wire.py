"""The lean HTTP/1.1 wire of the batching producer (`goqueue.http1`) against small servers on loopback that answer
as a broker would, or misbehave: keep-alive reuse, a connection the server dropped while idle (sent again, once, on
a new one), chunked and close-delimited answers, the answer-size bound, and each failure raised as the httpx
exception the transports' failover logic expects."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from broker_process import free_port

from goqueue.http1 import Answer, Http1Pool

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await reader.readexactly(length)


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on loopback; yields its URL and the requests it read. `handler` gets each connection's number."""
    requests: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            await handler(reader, writer, connections)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        original = reader.readuntil

        async def readuntil(separator: bytes = b"\n") -> bytes:
            data = await original(separator)
            requests.append(data)
            return data
        reader.readuntil = readuntil  # type: ignore[method-assign]
        await serve(reader, writer)

    listening = await asyncio.start_server(recording, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", requests
    finally:
        listening.close()


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def two_requests(handler: Handler, first: str, second: str) -> tuple[Answer, Answer]:
    """Two GETs, one after the other, through one pool (so on one connection when it may be kept)."""
    async with server(handler) as (url, _):
        pool = Http1Pool()
        answers = (await pool.request("GET", url + first, timeout_s=5), await pool.request("GET", url + second,
                                                                                             timeout_s=5))
        await pool.aclose()
    return answers


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
    while True:
        request = await read_request(reader)
        writer.write(ok(b"connection %d: %s" % (number, request.split(b" ")[1])))
        await writer.drain()


def test_requests_share_a_kept_alive_connection_and_carry_their_query_headers_and_body() -> None:
    async def run() -> None:
        async with server(keep_answering) as (url, requests):
            pool = Http1Pool()
            first = await pool.request("POST", url + "/v1/x", params={"acks": "all"}, content=b"batch",
                                       headers={"content-type": "application/vnd.goqueue.batch"}, timeout_s=5)
            second = await pool.request("GET", url + "/v1/y", timeout_s=5)
            await pool.aclose()
        assert (first.status, first.body) == (200, b"connection 1: /v1/x?acks=all")
        assert second.body == b"connection 1: /v1/y"  # the same connection
        assert b"content-type: application/vnd.goqueue.batch" in requests[0]
        assert b"content-length: 5" in requests[0]
    asyncio.run(run())


async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
    await read_request(reader)
    writer.write(ok(b"connection %d" % number))
    await writer.drain()
    await read_request(reader)
    # and hang up without answering: a server whose keep-alive timeout ran out as the request arrived


def test_a_connection_the_server_dropped_while_idle_is_replaced_and_the_request_sent_once_more() -> None:
    async def run() -> None:
        async with server(answer_once) as (url, requests):
            pool = Http1Pool(idle_s=60)
            assert (await pool.request("GET", url + "/", timeout_s=5)).body == b"connection 1"
            assert (await pool.request("GET", url + "/again", timeout_s=5)).body == b"connection 2"
            await pool.aclose()
        assert [r.split(b" ")[1] for r in requests] == [b"/", b"/again", b"/again"]  # sent once more, not twice
    asyncio.run(run())


def test_connection_close_and_idle_expiry_are_not_reused() -> None:
    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        writer.write(ok(b"%d" % number, "connection: close"))
        await writer.drain()
        await asyncio.sleep(1)  # keeps it open: only the header says it will not be reused

    async def run() -> None:
        async with server(closing) as (url, _):
            pool = Http1Pool()
            bodies = [(await pool.request("GET", url + "/", timeout_s=5)).body for _ in range(2)]
            assert bodies == [b"1", b"2"]
        async with server(keep_answering) as (url, _):
            pool = Http1Pool(idle_s=0.0)
            first = await pool.request("GET", url + "/", timeout_s=5)
            await asyncio.sleep(0.01)
            second = await pool.request("GET", url + "/", timeout_s=5)
            assert (first.body[:12], second.body[:12]) == (b"connection 1", b"connection 2")
            await pool.aclose()
    asyncio.run(run())


def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"5\r\n{\"err\r\n7;ext=1\r\nor\": 1}\r\n0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # reused after a chunked answer
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil ")
        await writer.drain()
        await asyncio.sleep(0.1)  # the body in two parts: read to the end, not what happens to be there
        writer.write(b"the end")
        await writer.drain()

    first, second = asyncio.run(two_requests(chunked, "/", "/"))
    assert (first.status, first.body) == (503, b'{"error": 1}')
    assert (second.status, second.body) == (200, b"until the end")


@pytest.mark.parametrize(("answer", "hang_up", "expected"), [
    (b"", True, httpx.RemoteProtocolError),                                       # closed without answering
    (b"SSH-2.0-OpenSSH\r\n\r\n", False, httpx.RemoteProtocolError),              # not HTTP
    (b"HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n", False, httpx.RemoteProtocolError),  # absurd
    (b"HTTP/1.1 200 OK\r\n" + b"x: y\r\n" * 101, False, httpx.RemoteProtocolError),  # endless headers
    (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", True, httpx.RemoteProtocolError),  # cut short
    (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc", False,
     httpx.RemoteProtocolError),                                                  # which length?
    (b"HTTP/1.1 200 OK\r\ncontent-length: +3\r\n\r\nabc", False, httpx.RemoteProtocolError),  # not digits
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n", False,
     httpx.RemoteProtocolError),                                                  # chunk without its CRLF
    (b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\n\r\n", False, httpx.RemoteProtocolError),
    (b"", False, httpx.ReadTimeout),                                              # never answers
])
def test_a_broken_answer_raises_the_httpx_error_failover_expects(answer: bytes, hang_up: bool,
                                                                 expected: type[Exception]) -> None:
    """Refused at once, not when the timeout runs out, unless the server truly says nothing."""
    async def misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        if not hang_up:
            await asyncio.sleep(5)

    async def run() -> None:
        async with server(misbehave) as (url, _):
            pool = Http1Pool()
            with pytest.raises(expected):
                await pool.request("GET", url + "/", timeout_s=2 if expected is not httpx.ReadTimeout else 0.3)
            await pool.aclose()
    asyncio.run(run())


def test_nothing_listening_is_a_connect_error_so_the_next_server_is_tried_at_once() -> None:
    async def run() -> None:
        pool = Http1Pool()
        with pytest.raises(httpx.ConnectError):
            await pool.request("GET", f"http://127.0.0.1:{free_port()}/", timeout_s=2)
        with pytest.raises(httpx.UnsupportedProtocol):
            await pool.request("GET", "ftp://127.0.0.1/", timeout_s=2)
    asyncio.run(run())


def test_interim_answers_are_read_past_and_the_connection_stays_in_step() -> None:
    """A 1xx answer returned as the answer would leave the real one unread on a reused connection: the next request
    would get it (a batch acknowledged with another batch's offset)."""
    async def early_hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        request = await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + ok(request.split(b" ")[1]))
        await writer.drain()
        request = await read_request(reader)
        writer.write(ok(request.split(b" ")[1]))
        await writer.drain()

    first, second = asyncio.run(two_requests(early_hints, "/first", "/second"))
    assert [(first.status, first.body), (second.status, second.body)] == [(200, b"/first"), (200, b"/second")]


def test_a_request_not_safe_to_repeat_is_not_resent_and_nothing_after_an_answer_began_is() -> None:
    """Unstamped batches (acks=0) go once: an end before the answer may also be a broker that wrote and died. And a
    reset once an answer has begun is never a stale connection: that request reached the server."""
    async def then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        await read_request(reader)
        writer.write(ok(b"first"))
        await writer.drain()
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhal")  # an answer cut short ...
        await writer.drain()
        await asyncio.sleep(0.1)  # ... that has arrived
        linger_zero = struct.pack("ii", 1, 0)  # close with a reset, not an orderly end
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
        writer.transport.abort()

    async def run() -> None:
        async with server(then_hang_up) as (url, requests):
            pool = Http1Pool(idle_s=60)
            await pool.request("GET", url + "/", timeout_s=5)
            with pytest.raises(httpx.RemoteProtocolError):
                await pool.request("GET", url + "/cut", timeout_s=5)
        assert [r.split(b" ")[1] for r in requests] == [b"/", b"/cut"]
        async with server(answer_once) as (url, requests):
            pool = Http1Pool(idle_s=60)
            await pool.request("GET", url + "/", timeout_s=5)
            with pytest.raises(httpx.RemoteProtocolError, match="not resent"):
                await pool.request("GET", url + "/once", timeout_s=5, resend_if_stale=False)
            await pool.aclose()
        assert [r.split(b" ")[1] for r in requests] == [b"/", b"/once"]
    asyncio.run(run())


def test_after_a_timeout_the_connection_is_not_reused() -> None:
    """Its late answer would be read as the next request's."""
    async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while True:
            request = await read_request(reader)
            if number == 1:
                await asyncio.sleep(0.5)
            writer.write(ok(b"connection %d: %s" % (number, request.split(b" ")[1])))
            await writer.drain()

    async def run() -> None:
        async with server(slow_first) as (url, _):
            pool = Http1Pool(idle_s=60)
            with pytest.raises(httpx.ReadTimeout):
                await pool.request("GET", url + "/slow", timeout_s=0.2)
            await asyncio.sleep(0.5)
            answer = await pool.request("GET", url + "/next", timeout_s=5)
            await pool.aclose()
        assert answer.body == b"connection 2: /next"
    asyncio.run(run())


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def run() -> None:
        pool = Http1Pool()
        with pytest.raises(httpx.LocalProtocolError):
            await pool.request("GET", "http://127.0.0.1:1/", headers={"authorization": "Bearer x\r\nx-admin: 1"},
                               timeout_s=1)
    asyncio.run(run())


def test_an_answer_larger_than_the_request_allows_is_refused_and_a_larger_bound_lets_it_through() -> None:
    """`max_answer_bytes` (64 MiB unless a caller expects more) bounds every framing: Content-Length, chunked and
    close-delimited."""
    body = b"x" * 100_000

    async def framed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int) -> None:
        while True:
            request = await read_request(reader)
            path = request.split(b" ")[1]
            if path == b"/chunked":
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                             + b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:60_000], body[60_000:]))
                             + b"0\r\n\r\n")
            elif path == b"/to-the-end":
                writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + body)
                await writer.drain()
                return
            else:
                writer.write(ok(body))
            await writer.drain()

    async def run() -> None:
        async with server(framed) as (url, _):
            pool = Http1Pool()
            for path in ("/length", "/chunked", "/to-the-end"):
                with pytest.raises(httpx.RemoteProtocolError):
                    await pool.request("GET", url + path, timeout_s=5, max_answer_bytes=99_999)
                answer = await pool.request("GET", url + path, timeout_s=5, max_answer_bytes=100_000)
                assert answer.body == body, path
            await pool.aclose()

    asyncio.run(run())
