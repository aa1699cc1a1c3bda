"""The one place HTTP errors are shaped: every failure becomes `{"error": {"code", "message", "retriable"}}`.

Domain errors carry their own status; FastAPI's validation errors (malformed JSON, wrong field types, values out of
their `goqueue.limits` range) become INVALID_REQUEST naming the first bad field, and so does a body FastAPI cannot
parse at all (not UTF-8, nested past the parser's depth). Starlette's routing errors keep their status (404 unknown
path, 405 wrong method) with a code of their own.

The OpenAPI document says the same: each route declares the errors it can answer (`error_responses`), grouped by
status, each status with the error body whose `code` is one of that route's codes; FastAPI's generic 422 is removed
because this API never answers it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from goqueue.errors import (
    DiskFull,
    GoQueueError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    NotLeader,
    NotReady,
    RequestTooLarge,
    Timeout,
    UnsupportedMediaType,
)

# Starlette's own errors: the code they are answered with, keeping their HTTP status; anything else is an
# INVALID_REQUEST.
_ROUTING_CODES = {404: NotFound.code, 405: MethodNotAllowed.code, 413: RequestTooLarge.code,
                  415: UnsupportedMediaType.code}

# Every route can answer these: a malformed request (or a body over the size limit), and a bug.
ANY_ROUTE: tuple[type[GoQueueError], ...] = (InvalidRequest, RequestTooLarge, InternalError)
# A change of the Raft metadata (topics, brokers): no quorum yet, a full volume, no commit in time.
METADATA_CHANGE: tuple[type[GoQueueError], ...] = (NotReady, NotLeader, Timeout, DiskFull)


def error_response(exc: GoQueueError) -> JSONResponse:
    return JSONResponse(status_code=exc.http_status, content=exc.to_body())


def describe_validation_error(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', message)}"
    return f"{location}: {message}" if location else message


def describe_unparsable_body(cause: BaseException | None) -> str:
    """FastAPI answers 400 "There was an error parsing the body" for what json.loads raises besides a syntax error."""
    if isinstance(cause, UnicodeDecodeError):
        return "request body is not valid JSON: it is not UTF-8 text"
    if isinstance(cause, RecursionError):
        return "request body is not valid JSON: it is nested too deeply"
    return "request body is not valid JSON"


def routing_error(exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:
        return error_response(InvalidRequest(describe_unparsable_body(exc.__cause__)))
    code = _ROUTING_CODES.get(exc.status_code, InvalidRequest.code)
    body = {"error": {"code": code, "message": str(exc.detail), "retriable": False}}
    return JSONResponse(status_code=exc.status_code, content=body, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GoQueueError)
    async def _domain(_: Request, exc: GoQueueError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(InvalidRequest(describe_validation_error(exc)))

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, _exc: ClientDisconnect) -> Response:
        # The peer hung up mid-request (a follower stopping, a client timing out): nobody reads an answer.
        return Response(status_code=499)

    @app.exception_handler(StarletteHTTPException)
    async def _routing(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return routing_error(exc)

    app.openapi = _without_generic_422(app.openapi)  # type: ignore[method-assign]


# -- the OpenAPI side ---------------------------------------------------------------------------------------------


def error_responses(*groups: type[GoQueueError] | Iterable[type[GoQueueError]]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these errors (plus ANY_ROUTE's): one entry per HTTP status, its
    body the error body with `code` restricted to the codes of that status."""
    classes: list[type[GoQueueError]] = list(ANY_ROUTE)
    for group in groups:
        for cls in (group,) if isinstance(group, type) else group:
            if cls not in classes:
                classes.append(cls)
    by_status: dict[int, list[type[GoQueueError]]] = {}
    for cls in classes:
        by_status.setdefault(cls.http_status, []).append(cls)
    return {status: _error_response(found) for status, found in sorted(by_status.items())}


def _error_response(classes: list[type[GoQueueError]]) -> dict[str, Any]:
    codes = sorted({cls.code for cls in classes})
    return {
        "description": "; ".join(f"{cls.code}: {(cls.__doc__ or '').strip().splitlines()[0]}" for cls in classes),
        "content": {"application/json": {"schema": error_body_schema(codes)}},
    }


def error_body_schema(codes: list[str]) -> dict[str, Any]:
    """The JSON schema of `GoQueueError.to_body()` with `code` one of `codes`."""
    return {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message", "retriable"], "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string"},
                "retriable": {"type": "boolean"},
                "details": {"type": "object"},
            }}},
    }


def _without_generic_422(build: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """FastAPI documents a 422 for every route with parameters; this API answers 400 INVALID_REQUEST instead."""

    def openapi() -> dict[str, Any]:
        schema = build()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    return openapi
