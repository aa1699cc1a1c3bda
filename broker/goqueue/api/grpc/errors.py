"""The one place gRPC errors are shaped: every failure becomes a status plus the stable code in trailing metadata.

A `GoQueueError` becomes `context.abort(grpc.StatusCode[error.grpc_code], error.message)` with trailing metadata
`goqueue-error-code` (the class's `code`, which clients map back with `error_for_code`) and `goqueue-retriable`.
Malformed protobuf never reaches a servicer method as an exception inside grpc (which would answer UNKNOWN and log
a traceback): `tolerant_deserializer` hands the method a `MalformedMessage`, which `translate_errors` turns into
INVALID_ARGUMENT / INVALID_REQUEST like any other bad field. An exception that is not a `GoQueueError` is a bug: it
is logged with its traceback and answered INTERNAL / INTERNAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError

from goqueue.errors import GoQueueError, InternalError, InvalidRequest
from goqueue.metrics import BrokerMetrics

log = logging.getLogger(__name__)

ERROR_CODE_KEY = "goqueue-error-code"
RETRIABLE_KEY = "goqueue-retriable"
OK_CODE = "OK"  # the `code` label of goqueue_requests for a successful call
CANCELLED_CODE = "CANCELLED"  # ... and for a call the client cancelled (or the server ended at shutdown)


@dataclass(frozen=True)
class MalformedMessage:
    """Stands in for a request message whose bytes did not parse."""

    type_name: str
    problem: str

    def to_error(self) -> InvalidRequest:
        return InvalidRequest(f"malformed {self.type_name} message: {self.problem}")


def tolerant_deserializer(message_type: Any) -> Callable[[bytes], Any]:
    """A request deserializer that returns a `MalformedMessage` instead of raising on bad bytes."""
    type_name = message_type.DESCRIPTOR.full_name

    def deserialize(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except DecodeError as exc:
            problem = str(exc).removeprefix(f"Error parsing message with type '{type_name}': ")
            return MalformedMessage(type_name, problem)

    return deserialize


def status_code_for(error: GoQueueError | type[GoQueueError]) -> grpc.StatusCode:
    """The gRPC status of an error class (its `grpc_code` names a `grpc.StatusCode` member)."""
    return grpc.StatusCode[error.grpc_code]


def trailing_metadata_for(error: GoQueueError) -> tuple[tuple[str, str], ...]:
    return ((ERROR_CODE_KEY, error.code), (RETRIABLE_KEY, "true" if error.retriable else "false"))


async def abort_with(context: grpc.aio.ServicerContext, error: GoQueueError) -> NoReturn:
    await context.abort(status_code_for(error), error.message, trailing_metadata=trailing_metadata_for(error))
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


class _Servicer(Protocol):
    metrics: BrokerMetrics


Method = TypeVar("Method", bound=Callable[..., Any])


def translate_errors(method: Method) -> Method:
    """Wrap a servicer method (unary or streaming) so every failure leaves it as a typed gRPC status.

    Also rejects a `MalformedMessage` request, and counts the call in `goqueue_requests{api="grpc"}`.
    """
    op = method.__name__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(self: _Servicer, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            code = OK_CODE
            try:
                async with contextlib.aclosing(method(self, _checked(request), context)) as responses:
                    async for response in responses:
                        yield response
            except grpc.aio.AbortError:
                raise
            except (asyncio.CancelledError, GeneratorExit):
                # a cancelled call ends a stream either way: its task is cancelled while the handler awaits,
                # or grpc closes the generator while it is suspended at a `yield`
                code = CANCELLED_CODE
                raise
            except Exception as exc:  # the boundary: every failure becomes a status
                error = as_goqueue_error(op, exc)
                code = error.code
                await abort_with(context, error)
            finally:
                self.metrics.requests.labels("grpc", op, code).inc()

        return stream  # type: ignore[return-value]

    @functools.wraps(method)
    async def unary(self: _Servicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        code = OK_CODE
        try:
            return await method(self, _checked(request), context)
        except grpc.aio.AbortError:
            raise
        except asyncio.CancelledError:
            code = CANCELLED_CODE
            raise
        except Exception as exc:  # the boundary: every failure becomes a status
            error = as_goqueue_error(op, exc)
            code = error.code
            await abort_with(context, error)
        finally:
            self.metrics.requests.labels("grpc", op, code).inc()

    return unary  # type: ignore[return-value]


def _checked(request: Any) -> Any:
    """The request, or for a client stream an iterator that raises on the first malformed message."""
    if isinstance(request, MalformedMessage):
        raise request.to_error()
    if hasattr(request, "__aiter__"):
        return _checked_stream(request)
    return request


async def _checked_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, MalformedMessage):
            raise request.to_error()
        yield request


def as_goqueue_error(op: str, exc: Exception) -> GoQueueError:
    """`exc` itself when it is an operating error; otherwise a bug: logged with its traceback, answered INTERNAL."""
    if isinstance(exc, GoQueueError):
        return exc
    log.exception("grpc.internal_error", extra={"op": op, "error": repr(exc)})
    return InternalError(f"internal error in {op}: {type(exc).__name__}")
