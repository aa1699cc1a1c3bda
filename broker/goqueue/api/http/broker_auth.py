"""The internal listener's gate: every request must carry a valid broker credential before any route runs.

An ASGI middleware inside `RequestLimits` (which bounds and buffers the body first): it reads the body, checks the
`X-GoQueue-Broker-Credential` signature over method, path, query and body (`security/broker_credential.py`), and
answers UNAUTHENTICATED (401) itself when it fails — the application never sees the request. Every refusal is
counted; it is logged at most once per `LOG_INTERVAL_S` (with how many were refused since), so a flood of forged
requests cannot fill the log volume.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from goqueue.api.http.asgi_body import read_body
from goqueue.errors import Unauthenticated
from goqueue.security.broker_credential import HEADER, BrokerVerifier

log = logging.getLogger(__name__)

_HEADER = HEADER.lower().encode()
LOG_INTERVAL_S = 10.0


class BrokerCredentialCheck:
    def __init__(self, app: ASGIApp, verifier: BrokerVerifier, on_refused: Callable[[], None]) -> None:
        self.app = app
        self.verifier = verifier
        self.on_refused = on_refused
        self._next_log_s = 0.0
        self._unlogged = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        body, last = await read_body(receive)
        query = scope.get("query_string", b"")
        target = scope.get("raw_path") or scope["path"].encode()
        target += b"?" + query if query else b""
        credential = next((value.decode("latin-1") for name, value in scope["headers"] if name == _HEADER), None)
        try:
            self.verifier.verify(credential, scope["method"], target, body)
        except Unauthenticated as error:
            self.on_refused()
            self._log_refusal(scope, error)
            await _answer(send, error)
            return
        await self.app(scope, _replay(body, last, receive), send)

    def _log_refusal(self, scope: Scope, error: Unauthenticated) -> None:
        now = time.monotonic()
        if now < self._next_log_s:
            self._unlogged += 1
            return
        client = scope.get("client")
        log.warning("internal.request_refused", extra={
            "client": client[0] if client else None, "path": scope["path"], "reason": error.message,
            "refused_since_last_log": self._unlogged})
        self._next_log_s, self._unlogged = now + LOG_INTERVAL_S, 0


def _replay(body: bytes, last: Message, receive: Receive) -> Receive:
    pending: list[Message] = [
        {"type": "http.request", "body": body, "more_body": False} if last["type"] == "http.request" else last]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


async def _answer(send: Send, error: Unauthenticated) -> None:
    payload = json.dumps(error.to_body()).encode()
    await send({"type": "http.response.start", "status": error.http_status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        (b"www-authenticate", b"GoQueue-Broker")]})
    await send({"type": "http.response.body", "body": payload})
