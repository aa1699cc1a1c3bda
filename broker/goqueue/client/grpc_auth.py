"""The gRPC client's session token on every call: channel interceptors adding `authorization: Bearer <token>`.

One set of interceptors per channel, with the function that returns the current token (a SCRAM exchange with that
channel's broker when one is due, `GrpcClient._authorization`). The exchange's own two rpcs go without it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

AUTHORIZATION_KEY = "authorization"
_OPEN_METHODS = ("/goqueue.v1.GoQueue/ScramStart", "/goqueue.v1.GoQueue/ScramFinish")


# grpc ships no types for its aio interceptors: the bases are Any to mypy.
class _BearerToken:
    def __init__(self, token: Callable[[], Awaitable[str]]) -> None:
        self._token = token

    async def _with_token(self, details: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method in _OPEN_METHODS:
            return details
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(AUTHORIZATION_KEY, f"Bearer {await self._token()}")
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                          details.wait_for_ready)


class _UnaryUnary(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(await self._with_token(client_call_details), request)


class _UnaryStream(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(await self._with_token(client_call_details), request)


class _StreamUnary(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any,
                                     request_iterator: Any) -> Any:
        return await continuation(await self._with_token(client_call_details), request_iterator)


class _StreamStream(_BearerToken, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any,
                                      request_iterator: Any) -> Any:
        return await continuation(await self._with_token(client_call_details), request_iterator)


def bearer_token_interceptors(token: Callable[[], Awaitable[str]]) -> list[Any]:
    """One interceptor per kind of call. A channel files each interceptor under the first kind it is an instance
    of (an `elif` chain in grpc.aio), so one class implementing all four would only ever see unary calls: the
    streams went without a token and were refused UNAUTHENTICATED."""
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]
