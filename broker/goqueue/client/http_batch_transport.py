"""The batching producer over HTTP binary batches (`POST /v1/topics/{t}/partitions/{p}/batches`), on asyncio.

Addresses as everywhere (`bootstrap.py`): a connection that cannot be made (nothing was sent) moves on to the next
server at once; a server that took the request and gave no answer moves the *next* request on and raises
`Unavailable`, which the producer's delivery loop resends (idempotent: a written batch is answered with its
offsets). With `credentials` it authenticates as the HTTP client does (`auth.py`: a SCRAM exchange with the server
it is about to call, the session token with every request, a new one when due or once when a broker refuses it).

Two wires carry the same requests: the lean one (the default), HTTP/1.1 straight on asyncio streams
(`goqueue/http1.py`), which costs the client a fraction of httpx's CPU per request (docs/PERFORMANCE.md, item 4);
or httpx (`wire="httpx"`, and whenever an httpx `transport` is given, as tests do).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal, TypeVar

import httpx
import msgspec
from pydantic import BaseModel

from goqueue.client.auth import Credentials, TokenHolder, client_final, verify_server
from goqueue.client.bootstrap import ServerList
from goqueue.client.http import error_from_response
from goqueue.client.tls import ClientTls
from goqueue.errors import GoQueueError, Unauthenticated, Unavailable
from goqueue.http1 import Answer, Http1Pool
from goqueue.models import (
    ANSWER,
    Acks,
    ScramFinishRequest,
    ScramFinishResponse,
    ScramStartRequest,
    ScramStartResponse,
    TopicInfo,
)

BATCH_MEDIA_TYPE = "application/vnd.goqueue.batch"  # the broker's binary batch body (api/http/routes/records.py)


class _Offset(msgspec.Struct):
    offset: int


class _Offsets(msgspec.Struct):
    """What a batch's answer (a `ProduceResponse`) is read for. msgspec skips the other fields (a newer broker's
    too) in C: pydantic's validation of every record's offset took about 13 % of the lean wire's client time in
    a profile (12 senders, 11 records a request)."""

    offsets: list[_Offset]


_BATCH_ANSWER = msgspec.json.Decoder(_Offsets)

DEFAULT_TIMEOUT_S = 30.0
M = TypeVar("M", bound=BaseModel)


class HttpBatchTransport:
    def __init__(self, servers: str | Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 credentials: Credentials | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 tls: ClientTls | None = None, wire: Literal["httpx", "lean"] | None = None) -> None:
        """`wire`: None is the lean wire, or httpx when `transport` (an httpx transport) is given."""
        if wire is None:
            wire = "httpx" if transport is not None else "lean"
        self.servers = ServerList(servers)
        self.timeout_s = timeout_s
        self.credentials = credentials
        if wire == "lean" and transport is not None:
            raise ValueError("an httpx transport is for wire='httpx'; the lean wire makes its own connections")
        self._tokens = TokenHolder()
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport,
                                       verify=tls.ssl_context() if tls is not None else True)
        self._lean = Http1Pool(tls.ssl_context() if tls is not None else None) if wire == "lean" else None

    async def partition_count(self, topic: str) -> int:
        answer = await self._request("GET", f"/v1/topics/{topic}", self.timeout_s, params={"details": "false"})
        return TopicInfo.model_validate_json(answer.body, context=ANSWER).partitions

    async def send_batch(self, topic: str, partition: int, batch: bytes, acks: Acks, timeout_s: float) -> int:
        answer = await self._request(
            "POST", f"/v1/topics/{topic}/partitions/{partition}/batches", timeout_s, content=batch,
            params={"acks": acks.value}, headers={"content-type": BATCH_MEDIA_TYPE},
            resend_if_stale=acks is not Acks.NONE)  # unstamped (acks=0) batches are sent once
        offsets = _BATCH_ANSWER.decode(answer.body).offsets  # a ProduceResponse; only its first offset matters
        return offsets[0].offset if offsets else -1

    async def _send(self, method: str, url: str, timeout_s: float, *, content: bytes | None,
                    params: dict[str, str] | None, headers: dict[str, str],
                    resend_if_stale: bool = True) -> tuple[Answer, GoQueueError | None]:
        """One request on the chosen wire: its answer, and the error the answer stands for."""
        if self._lean is not None:
            answer = await self._lean.request(method, url, params=params, headers=headers, content=content or b"",
                                              timeout_s=timeout_s, resend_if_stale=resend_if_stale)
            if answer.status < 400:
                return answer, None
            failed = httpx.Response(answer.status, content=answer.body, request=httpx.Request(method, url))
            return answer, error_from_response(failed)
        response = await self._http.request(method, url, content=content, params=params, headers=headers,
                                            timeout=timeout_s)
        return Answer(response.status_code, response.content), error_from_response(response)

    async def _request(self, method: str, path: str, timeout_s: float, *, content: bytes | None = None,
                       params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                       resend_if_stale: bool = True) -> Answer:
        unreached = Unavailable(f"none of {self.servers} can be reached")
        renewed = False
        tries = len(self.servers)
        while tries > 0:
            tries -= 1
            server = self.servers.current
            try:
                sent = {**(headers or {}), **await self._authorization(server)}
                answer, error = await self._send(method, server + path, timeout_s, content=content, params=params,
                                                 headers=sent, resend_if_stale=resend_if_stale)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self.servers.failed(server)
                unreached = Unavailable(f"cannot reach {server}: {exc}")
                continue  # nothing was sent: the next server at once
            except httpx.TimeoutException as exc:
                self.servers.failed(server)
                raise Unavailable(f"{server} did not answer in time ({method} {path})") from exc
            except httpx.HTTPError as exc:
                self.servers.failed(server)
                raise Unavailable(f"no answer from {server}: {exc}") from exc
            if isinstance(error, Unauthenticated) and self.credentials is not None and not renewed:
                self._tokens.forget()  # a refused token (a restarted lone broker, a new password): once, anew
                renewed, tries = True, tries + 1
                continue
            if error is not None:
                raise error
            return answer
        raise unreached

    async def _authorization(self, server: str) -> dict[str, str]:
        """The Authorization header for a request to `server`: a session token (got there when due), or none."""
        if self.credentials is None:
            return {}
        token = self._tokens.current(time.time())
        if token is None:
            exchange = self.credentials.exchange()
            started = await self._auth_step(server, "start", ScramStartRequest(client_first=exchange.client_first),
                                            ScramStartResponse)
            finished = await self._auth_step(server, "finish", ScramFinishRequest(
                exchange_id=started.exchange_id, client_final=client_final(exchange, started.server_first)),
                ScramFinishResponse)
            verify_server(exchange, finished.server_final)
            self._tokens.store(finished.token, finished.expires_at_ms / 1000, time.time())
            token = finished.token
        return {"authorization": f"Bearer {token}"}

    async def _auth_step(self, server: str, step: str, body: BaseModel, model: type[M]) -> M:
        answer, error = await self._send("POST", f"{server}/v1/auth/scram/{step}", self.timeout_s,
                                         content=body.model_dump_json().encode(), params=None,
                                         headers={"content-type": "application/json"})
        if error is not None:
            raise error
        return model.model_validate_json(answer.body, context=ANSWER)

    async def close(self) -> None:
        await self._http.aclose()
        if self._lean is not None:
            await self._lean.aclose()
