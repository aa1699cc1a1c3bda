"""`GrpcServer`: the gRPC listener on `broker.grpcPort` (grpc.aio), owned by `goqueue.server.BrokerServer`.

It serves `goqueue.v1.GoQueue` (bound method by method from the service descriptor, with tolerant deserializers so
malformed protobuf is answered INVALID_ARGUMENT) and the standard `grpc.health.v1.Health` service: SERVING for ""
and "goqueue.v1.GoQueue" while the broker is ready, NOT_SERVING from the start of shutdown.

Bounds: requests up to `limits.maxRequestBytes`, responses up to twice the larger of `limits.maxFetchBytes` and
`limits.maxRequestBytes` (a fetch always returns at least one whole batch, which may be as large as the request
that wrote it, and decoded records carry some protobuf overhead), at most `MAX_CONCURRENT_RPCS` calls at once
(beyond it gRPC answers RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from goqueue.api.grpc.errors import tolerant_deserializer
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.servicer import GoQueueServicer
from goqueue.broker import Broker
from goqueue.config import Settings
from goqueue.consumers.router import GroupRouter

log = logging.getLogger(__name__)

SERVICE = pb.DESCRIPTOR.services_by_name["GoQueue"]
SERVICE_NAME = SERVICE.full_name  # "goqueue.v1.GoQueue"
MAX_CONCURRENT_RPCS = 10_000  # the same bound as the HTTP server's limit_concurrency
ENVELOPE_BYTES = 64 * 1024  # protobuf framing around a request's payload of limits.maxRequestBytes

_HANDLER_FACTORIES = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def build_method_handlers(servicer: GoQueueServicer) -> dict[str, Any]:
    """One handler per rpc of the service descriptor; a servicer missing a method fails here, at start-up."""
    handlers: dict[str, Any] = {}
    for method in SERVICE.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        factory = _HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            getattr(servicer, method.name), request_deserializer=tolerant_deserializer(request_type),
            response_serializer=response_type.SerializeToString)
    return handlers


def server_options(settings: Settings) -> list[tuple[str, int]]:
    limits = settings.limits
    return [
        ("grpc.max_receive_message_length", limits.max_request_bytes + ENVELOPE_BYTES),
        ("grpc.max_send_message_length", 2 * max(limits.max_fetch_bytes, limits.max_request_bytes)),
        # grpc sets SO_REUSEPORT by default: a second broker on the same port would then start silently and
        # share its traffic. Refuse instead, as the HTTP port does.
        ("grpc.so_reuseport", 0),
    ]


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcServer:
    def __init__(self, broker: Broker, settings: Settings, groups: GroupRouter | None = None) -> None:
        self.broker = broker
        self.settings = settings
        self.servicer = GoQueueServicer(broker, groups)
        self.health = health_aio.HealthServicer()
        self.port: int | None = None
        self._server: Any = None

    async def start(self) -> None:
        """Bind `broker.host:broker.grpcPort` and serve; raises OSError when the port cannot be bound."""
        server = grpc.aio.server(options=server_options(self.settings), maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
        handlers = build_method_handlers(self.servicer)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = bind_address(self.settings.broker.host, self.settings.broker.grpc_port)
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc reports a failed bind as RuntimeError
            raise OSError(f"cannot bind gRPC to {address}: {exc}") from exc
        await server.start()
        self._server = server
        # BrokerServer binds gRPC before storage recovery: NOT_SERVING until it calls `mark_serving`.
        await self.mark_serving(self.broker.ready)
        log.info("grpc.started", extra={"address": address, "port": self.port})

    async def mark_serving(self, serving: bool = True) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING, end open streams, let unary calls finish within `grace_s`, then close."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        self.servicer.close()
        await self._server.stop(grace_s)
        self._server = None
        log.info("grpc.stopped")
