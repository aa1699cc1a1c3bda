"""The binary produce without FastAPI's routing and dependency resolution: an ASGI layer that answers the common
shape of `POST /v1/topics/{topic}/partitions/{p}/batches` itself.

Why: on a small produce FastAPI's routing, dependency solving and response model cost more than the append
(issue 18's profile, docs/PERFORMANCE.md → "Where a small produce goes"). This layer does what the route and its
dependencies do, in the same order and with the same functions:

1. `body.lone_surrogate_problem` when the body is declared JSON or undeclared (`CheckedBodyRoute`);
2. the caller (`auth.caller_access`: the bearer token or the verified client certificate; on the internal listener
   none, as there) and its PRODUCE right on the topic (`Access.check`, security.acls);
3. whether the request was forwarded (`deps.forwarded`);
4. `records.append_binary_batch`: the internal-topic guard and the produce metrics (`adapter_rules`), the size limit,
   `Broker.append_batch` (quotas, idempotence, the append and its fdatasync), the answer's JSON.

Errors are answered by `errors.error_response`, as the app's handlers do. It takes only requests whose partition is
a plain decimal in range and whose query string is empty or a single valid `acks=`; anything else (and every
other route) goes on to the FastAPI app, which answers it as before — including its 400s for malformed parameters,
so the two doors cannot disagree about bad input. It sits inside `RequestLimits` (the body is bounded and buffered
first) and, on the internal listener, inside the broker-credential check.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from goqueue import limits
from goqueue.api.http.asgi_body import read_body
from goqueue.api.http.auth import caller_access
from goqueue.api.http.body import lone_surrogate_problem
from goqueue.api.http.deps import forwarded
from goqueue.api.http.errors import error_response
from goqueue.api.http.routes.records import append_binary_batch
from goqueue.errors import GoQueueError, InvalidRequest
from goqueue.models import Acks
from goqueue.replication.peers import FORWARDED_HEADER
from goqueue.security.acls import Operation, topic

_PATH = re.compile(r"^/v1/topics/([^/]+)/partitions/(0|[1-9][0-9]{0,9})/batches$")
_ACKS = {b"": Acks.ALL, **{f"acks={acks.value}".encode(): acks for acks in Acks}}
_FORWARDED = FORWARDED_HEADER.lower().encode()
_ANSWER_HEADERS = [(b"content-type", b"application/json")]


class FastBatchProduce:
    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api  # its state: the broker, the gatekeeper, which listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        acks = _ACKS.get(scope.get("query_string", b""))
        if match is None or acks is None or not limits.PARTITION.minimum <= int(match[2]) <= limits.PARTITION.maximum:
            await self.app(scope, receive, send)
            return
        name, partition = match[1], int(match[2])
        # Lower-case names (ASGI); a repeated header counts with its first value, as Starlette's `headers.get`.
        headers = dict(reversed(scope["headers"]))
        body, last = await read_body(receive)
        if last["type"] != "http.request":
            return  # the client went away: nobody reads an answer
        state = self.api.state
        try:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if not content_type or "json" in content_type:
                problem = lone_surrogate_problem(body)
                if problem is not None:
                    raise InvalidRequest(problem)
            authorization = headers.get(b"authorization")
            access = caller_access(state.gatekeeper, state.listener,
                                   None if authorization is None else authorization.decode("latin-1"), scope)
            access.check(topic(name), Operation.PRODUCE)
            declared = headers.get(b"content-length", b"")
            answer = await append_binary_batch(
                state.broker, name, partition, lambda: _body(body), int(declared) if declared.isdigit() else 0, acks,
                forwarded(state.listener, state.broker, _FORWARDED in headers))
        except GoQueueError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*_ANSWER_HEADERS, (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


async def _body(body: bytes) -> bytes:
    return body
