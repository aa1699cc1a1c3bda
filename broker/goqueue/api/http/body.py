"""JSON request bodies: refuse text that `json.loads` lets through but no record, name or id can hold.

A JSON string may spell a lone UTF-16 surrogate (`"\\ud800"`); Python parses it into a `str` that cannot be encoded
as UTF-8, so it would fail later, deep in the broker (encoding a record key, writing group state), as a 500. Every
route of the API is a `CheckedBodyRoute`: a body holding such text is answered INVALID_REQUEST naming the field. The
check costs a byte search per request; only a body that spells a surrogate escape at all is parsed a second time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from goqueue.errors import InvalidRequest

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800 … \udfff: the only way JSON spells a surrogate


def lone_surrogate_problem(body: bytes) -> str | None:
    """Where the body holds text that is not valid Unicode, or None (also for a body that is not JSON: the route's
    own parsing answers that)."""
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    pending: list[tuple[str, Any]] = [("", document)]  # iterative: depth is bounded by the parser, not our stack
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return f"{path or 'body'}: text is not valid Unicode (a lone UTF-16 surrogate)"
        elif isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}.{key}" if path else key
                if not _encodable(key):
                    return f"{path or 'body'}: a key is not valid Unicode (a lone UTF-16 surrogate)"
                pending.append((where, item))
        elif isinstance(value, list):
            pending.extend((f"{path}.{index}" if path else str(index), item) for index, item in enumerate(value))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class CheckedBodyRoute(APIRoute):
    """An APIRoute that refuses a JSON body holding lone surrogates before FastAPI parses it into a model
    (FastAPI parses a body without a content type as JSON too, so that is checked as well)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if request.method in {"POST", "PUT", "PATCH"} and (not content_type or "json" in content_type):
                problem = lone_surrogate_problem(await request.body())
                if problem is not None:
                    raise InvalidRequest(problem)
            return await handler(request)

        return checked
