"""A follower's fetch without FastAPI's routing and dependency resolution: an ASGI layer on the internal listener
that answers `POST /internal/v1/replica/fetch` itself.

Why: every replicated write costs each follower one fetch, and FastAPI's routing and dependency solving cost more
than `ReplicaManager.serve_replica_fetch` does for a small one (issue 18 item 7, docs/PERFORMANCE.md). It does what
the route does (`routes/replica.py`), with the same decoder and the same call: the msgpack body decoded, a
malformed one INVALID_REQUEST, the answer msgpack. Errors are answered by `errors.error_response`, as the app's
handlers do. A query string, another method or another path goes on to the FastAPI app. It sits inside
`RequestLimits` (the body is bounded and buffered first) and inside the broker-credential check, so it only ever
sees requests a broker signed.
"""

from __future__ import annotations

import msgspec
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from goqueue.api.http.asgi_body import read_body
from goqueue.api.http.errors import error_response
from goqueue.api.http.routes.replica import decode_fetch, encode_answer
from goqueue.errors import GoQueueError, InvalidRequest
from goqueue.replication.peers import REPLICA_FETCH_PATH, REPLICA_MEDIA_TYPE

_ANSWER_TYPE = (b"content-type", REPLICA_MEDIA_TYPE.encode())


class FastReplicaFetch:
    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api  # its state: the broker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != REPLICA_FETCH_PATH
                or scope.get("query_string", b"")):
            await self.app(scope, receive, send)
            return
        body, last = await read_body(receive)
        if last["type"] != "http.request":
            return  # the follower went away: nobody reads an answer
        try:
            try:
                fetch = decode_fetch(body)
            except msgspec.DecodeError as exc:
                raise InvalidRequest(f"malformed replica fetch: {exc}") from exc
            answer = encode_answer(await self.api.state.broker.replicas.serve_replica_fetch(fetch))
        except GoQueueError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [_ANSWER_TYPE, (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
