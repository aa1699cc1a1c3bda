"""SCRAM-SHA-512 authentication over HTTP, in two steps, ending in a session token (docs/SECURITY.md).

`POST /v1/auth/scram/start` takes the client-first message and answers an exchange id and the server-first message;
`POST /v1/auth/scram/finish` takes the id and the client-final message and answers the server-final message (the
broker's proof) with a bearer token. Both steps go to the same broker, within 30 s; each exchange finishes once.
These routes are open: they are how a client gets in. gRPC clients use the same exchange through the
`ScramStart`/`ScramFinish` rpcs.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from goqueue.api.http.auth import gatekeeper
from goqueue.api.http.body import CheckedBodyRoute
from goqueue.api.http.errors import error_responses
from goqueue.errors import Unauthenticated
from goqueue.models import ScramFinishRequest, ScramFinishResponse, ScramStartRequest, ScramStartResponse

router = APIRouter(prefix="/v1/auth/scram", tags=["authentication"], route_class=CheckedBodyRoute)


@router.post("/start", response_model=ScramStartResponse, summary="SCRAM-SHA-512, step 1: client-first",
             responses=error_responses())
async def scram_start(body: ScramStartRequest, request: Request) -> ScramStartResponse:
    started = gatekeeper(request).scram_start(body.client_first)
    return ScramStartResponse(exchange_id=started.exchange_id, server_first=started.server_first)


@router.post("/finish", response_model=ScramFinishResponse, summary="SCRAM-SHA-512, step 2: client-final → token",
             responses=error_responses(Unauthenticated))
async def scram_finish(body: ScramFinishRequest, request: Request) -> ScramFinishResponse:
    finished = gatekeeper(request).scram_finish(body.exchange_id, body.client_final)
    return ScramFinishResponse(server_final=finished.server_final, token=finished.token,
                               principal=str(finished.principal),
                               expires_at_ms=round(finished.expires_at_s * 1000))
