"""The one place HTTP errors are shaped: every failure becomes `{"error": {"code", "message", "retriable"}}`.

Domain errors carry their own status; FastAPI's validation errors (malformed JSON, wrong field types) become
INVALID_REQUEST naming the first bad field; Starlette's routing errors (unknown path, wrong method) keep their
status with a code of their own.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from goqueue.errors import GoQueueError, InvalidRequest

_ROUTING_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA"}


def error_response(exc: GoQueueError) -> JSONResponse:
    return JSONResponse(status_code=exc.http_status, content=exc.to_body())


def describe_validation_error(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "json_invalid":
        return f"request body is not valid JSON: {first.get('ctx', {}).get('error', message)}"
    return f"{location}: {message}" if location else message


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
        code = _ROUTING_CODES.get(exc.status_code, "HTTP_ERROR")
        body = {"error": {"code": code, "message": str(exc.detail), "retriable": False}}
        return JSONResponse(status_code=exc.status_code, content=body)
