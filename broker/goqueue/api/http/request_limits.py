"""Request size limits on HTTP, enforced before anything is parsed (ASGI middleware, outside FastAPI).

A body is refused with REQUEST_TOO_LARGE (413, connection closed) when its Content-Length says it is too large, or
as soon as the bytes that streamed in pass the limit (chunked bodies have no length): at most the limit is ever
buffered. The limit is `limits.maxRequestBytes` for the binary record-batch route (no per-record parsing there) and
`limits.maxJsonRequestBytes` for every other route (JSON parsing holds the event loop).

A JSON produce also has its records counted before FastAPI validates them (`limits.maxRecordsPerRequest`):
validation costs ~8 µs per record on the event loop, so a 23 MB body of a million tiny records once stalled every
probe for 16 s. Counting is a byte search; only a body with more `{` than the limit allows is parsed to count.

The body is read here and handed on whole to the application, which would have buffered it anyway.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from goqueue.config import LimitsSection
from goqueue.errors import RequestTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BATCH_PATH = re.compile(r"^/v1/topics/[^/]+/partitions/[^/]+/batches$")
JSON_PRODUCE_PATH = re.compile(r"^/v1/topics/[^/]+/records$")


def body_limit(limits: LimitsSection, method: str, path: str) -> tuple[int, str]:
    """(bytes, the setting that says so) for a request to `path`."""
    if method == "POST" and BATCH_PATH.match(path):
        return limits.max_request_bytes, "limits.maxRequestBytes"
    return limits.max_json_request_bytes, "limits.maxJsonRequestBytes"


def too_many_records(body: bytes, max_records: int) -> int | None:
    """The record count of a JSON produce body when it is over `max_records`, else None (also for a body that is
    not JSON: the route answers that)."""
    if body.count(b"{") <= max_records + 1:  # every record is an object, and so is the request: surely within
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    records = document.get("records") if isinstance(document, dict) else None
    if isinstance(records, list) and len(records) > max_records:
        return len(records)
    return None


class RequestLimits:
    """ASGI middleware: body size and records per request, checked before the application parses anything."""

    def __init__(self, app: ASGIApp, limits: LimitsSection, on_refused: Callable[[str], None]) -> None:
        self.app = app
        self.limits = limits
        self.on_refused = on_refused  # counts goqueue_limit_refusals_total{port="http", limit=...}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        limit, key = body_limit(self.limits, method, path)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(send, "request_bytes", f"request body is {declared} bytes; the limit for {path} is "
                               f"{limit} ({key})")
            return
        chunks: list[bytes] = []
        size = 0
        last: Message = {"type": "http.request", "body": b"", "more_body": False}
        while True:
            message = await receive()
            if message["type"] != "http.request":
                last = message  # the client went away: the application sees the disconnect as it would have
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(send, "request_bytes", f"request body passed {limit} bytes, the limit for "
                                   f"{path} ({key})")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if method == "POST" and JSON_PRODUCE_PATH.match(path):
            count = too_many_records(body, self.limits.max_records_per_request)
            if count is not None:
                await self._refuse(send, "records", f"{count} records in one request; limits.maxRecordsPerRequest "
                                   f"is {self.limits.max_records_per_request}: split it")
                return
        await self.app(scope, _replay(body, last, receive), send)

    async def _refuse(self, send: Send, limit: str, message: str) -> None:
        self.on_refused(limit)
        error = RequestTooLarge(message)
        payload = json.dumps(error.to_body()).encode()
        # Connection: close — the rest of the body is never read, so the connection cannot carry another request.
        await send({"type": "http.response.start", "status": error.http_status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # a malformed length is the HTTP parser's to refuse
    return None


def _replay(body: bytes, last: Message, receive: Receive) -> Receive:
    """The body, whole, as one message; then whatever the server says next (a disconnect)."""
    pending: list[Message] = [
        {"type": "http.request", "body": body, "more_body": False} if last["type"] == "http.request" else last]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
