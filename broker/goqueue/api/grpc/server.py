"""`GrpcServer`: the gRPC listener on `broker.grpcPort` (grpc.aio), owned by `goqueue.server.BrokerServer`.

It serves `goqueue.v1.GoQueue` (bound method by method from the service descriptor, with tolerant deserializers so
malformed protobuf is answered INVALID_ARGUMENT) and the standard `grpc.health.v1.Health` service: SERVING for ""
and "goqueue.v1.GoQueue" while the broker is ready, NOT_SERVING from the start of shutdown.

Bounds (`limits.*`, docs/RUNBOOK.md → Resource limits): messages up to `maxRequestBytes`, refused by gRPC before
parsing; produce requests of at most `maxRecordsPerRequest` records, refused REQUEST_TOO_LARGE right after the
protobuf parse and before any per-record work; responses up to twice the larger of `maxFetchBytes` and
`maxRequestBytes` (a fetch always returns at least one whole batch, which may be as large as the request that
wrote it, and decoded records carry some protobuf overhead); at most `MAX_CONCURRENT_RPCS` calls at once (beyond it
gRPC answers RESOURCE_EXHAUSTED); at most `maxGrpcConnections` connections, each closed after `grpcIdleTimeout`
without a call and pinged every 60 s to find dead peers, and a handshake must finish within `headerTimeout`.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from goqueue.api.gatekeeper import Gatekeeper
from goqueue.api.grpc.errors import MalformedMessage, tolerant_deserializer
from goqueue.api.grpc.generated import goqueue_pb2 as pb
from goqueue.api.grpc.servicer import GoQueueServicer
from goqueue.broker import Broker
from goqueue.config import Settings
from goqueue.consumers.router import GroupRouter
from goqueue.errors import RequestTooLarge

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


KEEPALIVE_TIME_MS = 60_000     # ping an idle client this often: a peer that vanished is found within ~80 s
KEEPALIVE_TIMEOUT_MS = 20_000  # and given this long to answer


class TooManyRecords(MalformedMessage):
    """A produce request over limits.maxRecordsPerRequest: refused like a malformed message, before any work."""

    def to_error(self) -> RequestTooLarge:
        return RequestTooLarge(self.problem)


def records_bounded(deserialize: Any, max_records: int) -> Any:
    """A deserializer that turns a message with more than `max_records` records into a `TooManyRecords`."""

    def bounded(data: bytes) -> Any:
        message = deserialize(data)
        if not isinstance(message, MalformedMessage) and len(message.records) > max_records:
            return TooManyRecords(message.DESCRIPTOR.full_name, f"{len(message.records)} records in one request; "
                                  f"limits.maxRecordsPerRequest is {max_records}: split it")
        return message

    return bounded


def build_method_handlers(servicer: GoQueueServicer, max_records: int = 100_000) -> dict[str, Any]:
    """One handler per rpc of the service descriptor; a servicer missing a method fails here, at start-up."""
    handlers: dict[str, Any] = {}
    for method in SERVICE.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        factory = _HANDLER_FACTORIES[(method.client_streaming, method.server_streaming)]
        deserializer = tolerant_deserializer(request_type)
        field = method.input_type.fields_by_name.get("records")
        if field is not None and field.message_type is not None and field.message_type.name == "Record":
            deserializer = records_bounded(deserializer, max_records)  # produce: records to write
        handlers[method.name] = factory(
            getattr(servicer, method.name), request_deserializer=deserializer,
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
        ("grpc.max_allowed_incoming_connections", limits.max_grpc_connections),
        ("grpc.max_connection_idle_ms", round(limits.grpc_idle_timeout_s * 1000)),
        ("grpc.server_handshake_timeout_ms", round(limits.header_timeout_s * 1000)),
        ("grpc.max_metadata_size", limits.max_header_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
    ]


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcServer:
    def __init__(self, broker: Broker, settings: Settings, groups: GroupRouter | None = None,
                 gatekeeper: Gatekeeper | None = None, credentials: grpc.ServerCredentials | None = None) -> None:
        """`credentials`: TLS (`security/tls.py`); None serves plaintext."""
        self.broker = broker
        self.credentials = credentials
        self.settings = settings
        self.servicer = GoQueueServicer(broker, groups, gatekeeper or Gatekeeper(
            settings, lambda: broker.membership.view))
        self.health = health_aio.HealthServicer()
        self.port: int | None = None
        self._server: Any = None

    async def start(self) -> None:
        """Bind `broker.host:broker.grpcPort` and serve; raises OSError when the port cannot be bound."""
        server = grpc.aio.server(options=server_options(self.settings), maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
        handlers = build_method_handlers(self.servicer, self.settings.limits.max_records_per_request)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = bind_address(self.settings.broker.host, self.settings.broker.grpc_port)
        try:
            self.port = (server.add_secure_port(address, self.credentials) if self.credentials is not None
                         else server.add_insecure_port(address))
        except RuntimeError as exc:  # grpc reports a failed bind as RuntimeError
            raise OSError(f"cannot bind gRPC to {address}: {exc}") from exc
        await server.start()
        self._server = server
        # BrokerServer binds gRPC before storage recovery: NOT_SERVING until it calls `mark_serving`.
        await self.mark_serving(self.broker.ready)
        log.info("grpc.started", extra={"address": address, "port": self.port, "tls": self.credentials is not None})

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
