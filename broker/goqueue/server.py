"""`BrokerServer` owns the broker's lifecycle, like uvicorn's `Server`.

start(): bind HTTP — the client port (so /healthz answers while storage recovers) and the internal
broker-to-broker port — recover storage, start gRPC → serve() until SIGTERM/SIGINT → stop(): stop accepting, let
in-flight requests finish within `broker.shutdownGrace`, flush and checkpoint every log. Every background task lives
in this object and is awaited on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import ssl
import time
from collections.abc import Callable, Generator

import uvicorn
from fastapi import FastAPI

from goqueue.api.gatekeeper import Gatekeeper
from goqueue.api.grpc.server import GrpcServer
from goqueue.api.http.app import create_app
from goqueue.api.http.connection_limits import guarded_protocol
from goqueue.broker import Broker
from goqueue.cluster.admin import ClusterAdmin
from goqueue.cluster.membership import ClusterMembership
from goqueue.cluster.topics import TopicMeta, TopicRegistry
from goqueue.config import Settings
from goqueue.consumer_host import BrokerConsumerHost
from goqueue.consumers.coordinator import GroupCoordinator
from goqueue.consumers.router import GroupRouter
from goqueue.gc_pauses import GcPauses, freeze_startup_objects
from goqueue.metrics import BrokerMetrics, ConsumerMetrics
from goqueue.models import CleanupPolicy
from goqueue.replicas.manager import ReplicaManager
from goqueue.replication.raft import MetadataFactory, RaftMetadata
from goqueue.replication.raft_tls import RaftTls
from goqueue.replication.raft_transport import TransportLimits
from goqueue.security.broker_credential import BrokerVerifier, authority
from goqueue.security.tls import TlsFiles
from goqueue.storage.log_manager import LogManager, LogPolicy

log = logging.getLogger(__name__)


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: BrokerServer decides when and how to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def compose_broker(settings: Settings, metrics: BrokerMetrics, clock: Callable[[], float] = time.time,
                   metadata_factory: MetadataFactory = RaftMetadata, peer_tls: ssl.SSLContext | None = None) -> Broker:
    """Build the broker's parts and wire their callbacks: metadata applied by Raft → replicas reconcile; a topic's
    settings → its logs' retention policy. Dependencies point one way (broker → replicas → cluster → storage).
    `peer_tls`: the context of broker-to-broker https calls (`security/tls.py`)."""
    replicas: ReplicaManager | None = None

    def metadata_applied() -> None:
        assert replicas is not None
        replicas.schedule_reconcile()

    membership = ClusterMembership(settings, on_applied=metadata_applied, metadata_factory=metadata_factory,
                                   peer_tls=peer_tls)
    registry = TopicRegistry(lambda: membership.state)
    logs = LogManager(settings.storage, settings.retention, metrics,
                      lambda topic: log_policy(settings, registry.topics.get(topic)), clock)
    replicas = ReplicaManager(settings, metrics, membership, logs, registry, clock)
    admin = ClusterAdmin(settings, membership, registry)
    return Broker(settings, metrics, membership, replicas, logs, registry, admin, clock)


def log_policy(settings: Settings, meta: TopicMeta | None) -> LogPolicy | None:
    """A topic's settings, falling back to the broker's retention defaults, as its logs' cleanup policy."""
    if meta is None:
        return None
    config, defaults = meta.config, settings.retention
    return LogPolicy(
        compact=config.cleanup_policy is CleanupPolicy.COMPACT,
        tombstone_retention_s=config.tombstone_retention_s or defaults.tombstone_retention_s,
        max_age_s=config.retention_max_age_s or defaults.max_age_s,
        max_bytes_per_partition=(config.retention_max_bytes or defaults.max_size_bytes) // meta.partitions)


class BrokerServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = BrokerMetrics()
        limits = settings.limits
        refusals = self.metrics.limit_refusals
        # TLS files read and checked before anything binds: unusable files stop the start with their reason.
        self.tls = TlsFiles(settings.tls, lambda result: self.metrics.tls_reloads.labels(result).inc()) \
            if settings.tls.cert_file is not None else None
        if self.tls is not None:
            tls = self.tls
            self.metrics.tls_expiry.set_function(lambda: tls.not_after_s)
        tls_on = settings.tls.enabled_on
        self.broker = compose_broker(
            settings, self.metrics, peer_tls=self.tls.peer_context() if self.tls is not None else None,
            metadata_factory=functools.partial(
            RaftMetadata, transport_limits=TransportLimits(
                max_connections=limits.max_raft_connections, max_frame_bytes=limits.raft_max_frame_bytes,
                first_message_timeout_s=limits.header_timeout_s,
                on_refused=lambda limit: refusals.labels("raft", limit).inc()), tls=self._raft_tls()))
        consumer_host = BrokerConsumerHost(self.broker)  # all the consumer groups see of the broker
        self.coordinator = GroupCoordinator(consumer_host, settings.consumers, ConsumerMetrics(self.metrics.registry))
        GcPauses().install(self.metrics.registry)  # one BrokerServer per process (main.py)
        self.groups = GroupRouter(consumer_host, self.coordinator)  # HTTP and gRPC reach groups only through it
        self.gatekeeper = Gatekeeper(settings, lambda: self.broker.membership.view)  # one per broker: HTTP, gRPC
        self.app = create_app(self.broker, self.groups, self.gatekeeper)
        self.internal_app = create_app(self.broker, self.groups, self.gatekeeper, "internal", BrokerVerifier(
            settings.cluster.password, authority(settings.advertised_host(), settings.broker.internal_port), time.time))
        self.http = self._listener(self.app, settings.broker.port, "http", self._server_tls("http"))
        self.internal_http = self._listener(self.internal_app, settings.broker.internal_port, "internal",
                                            self._server_tls("internal"))
        self.metrics.open_connections.labels("raft").set_function(self._raft_connections)
        grpc_tls = self.tls.grpc_credentials() if self.tls is not None and tls_on("grpc") else None
        self.grpc = (GrpcServer(self.broker, settings, self.groups, self.gatekeeper, grpc_tls)
                     if settings.broker.grpc_port else None)
        self._stop = asyncio.Event()
        self._http_tasks: list[asyncio.Task[None]] = []
        self._tls_reload: asyncio.Task[None] | None = None

    def _raft_tls(self) -> RaftTls | None:
        """Raft's TLS: TLS only when tls.listeners names raft; with a certificate and the CA but raft not named (the
        default, and a cluster rolling into or out of TLS-only Raft), TLS offered and plain still accepted from a
        peer that does not speak it (replication/raft_tls.py)."""
        if self.tls is None or self.settings.tls.ca_file is None:
            return None
        return RaftTls(self.tls.server_context("raft"), self.tls.peer_context(),
                       strict=self.settings.tls.enabled_on("raft"), lock=self.tls.lock)

    def _server_tls(self, listener: str) -> ssl.SSLContext | None:
        return self.tls.server_context(listener) if self.tls is not None and self.settings.tls.enabled_on(
            listener) else None

    def _listener(self, app: FastAPI, port: int, label: str, tls: ssl.SSLContext | None) -> _UvicornServer:
        """One HTTP listener with the broker's connection limits and graceful stop; `label` names its port in the
        metrics; `tls` its server context (reloaded in place by `TlsFiles.check`), None for plaintext."""
        limits, refusals = self.settings.limits, self.metrics.limit_refusals
        config = uvicorn.Config(
            app, host=self.settings.broker.host, port=port, log_config=None,
            access_log=False, timeout_graceful_shutdown=int(self.settings.broker.shutdown_grace_s) or None,
            # Connections are bounded by the protocol (limits.maxHttpConnections, probes kept), not by uvicorn's
            # limit_concurrency, which answers 503 to the probes too.
            http=guarded_protocol(limits, lambda limit: refusals.labels(label, limit).inc(),
                                  stopping=lambda: server.should_exit),
            limit_concurrency=None, backlog=2048,
            timeout_keep_alive=max(1, round(limits.http_idle_timeout_s)),
            ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None)
        server = _UvicornServer(config)
        self.metrics.open_connections.labels(label).set_function(lambda: len(server.server_state.connections))
        return server

    def _raft_connections(self) -> int:
        count = getattr(self.broker.membership.raft, "open_connections", None)  # None before Raft started
        return int(count()) if count is not None else 0

    async def start(self) -> None:
        for name, server in (("http", self.http), ("internal", self.internal_http)):
            task = asyncio.create_task(server.serve(), name=name)
            self._http_tasks.append(task)
            while not server.started:
                if task.done():
                    await task  # surfaces the bind error
                    raise RuntimeError(f"the {name} HTTP server exited during start-up")
                await asyncio.sleep(0.01)
        if self.grpc is not None:
            await self.grpc.start()  # bound before readiness; it answers NOT_READY until the broker is ready
        if self.tls is not None:
            self._tls_reload = asyncio.create_task(self._reload_tls(self.tls), name="tls-reload")
        await self.broker.start()
        await self.coordinator.start()  # replays the __consumer_state partitions led here: groups, offsets, leases
        if self.grpc is not None:
            await self.grpc.mark_serving()
        frozen = freeze_startup_objects()  # full collections stop walking them (gc_pauses.py): one ~50 ms pause now
        log.info("server.started", extra={
            "broker_id": self.broker.broker_id, "http": f"{self.settings.broker.host}:{self.settings.broker.port}",
            "internal": self.settings.broker.internal_port, "grpc": self.settings.broker.grpc_port,
            "gc_frozen_objects": frozen})

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        stop_wait: asyncio.Task[bool] | None = None
        try:
            # A stop asked for while starting (e.g. waiting for a metadata quorum that never forms) ends the start:
            # a pod that cannot reach its peers must still stop on SIGTERM, not at the kubelet's SIGKILL.
            starting = asyncio.create_task(self.start(), name="start")
            stop_wait = asyncio.create_task(self._stop.wait())
            await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                log.info("server.stop_while_starting")
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                return
            await starting  # surfaces a start-up error
            done, _ = await asyncio.wait({stop_wait, *self._http_tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stop_wait}:
                stop_wait.cancel()
                await task  # surfaces why that listener died
        finally:
            if stop_wait is not None:
                stop_wait.cancel()
            await self.stop()

    async def _reload_tls(self, tls: TlsFiles) -> None:
        """Renewed certificates are served without a restart (`TlsFiles.check`)."""
        while True:
            await asyncio.sleep(self.settings.tls.reload_check_s)
            # On the loop, where the contexts are used: OpenSSL does not promise a context changed by one thread
            # while another makes connections from it stays sound. A check is a few stat() calls; a reload ~1 ms.
            tls.check()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        log.info("server.stopping")
        if self._tls_reload is not None:
            self._tls_reload.cancel()
        self.broker.begin_stop()
        if self.grpc is not None:
            await self.grpc.stop(self.settings.broker.shutdown_grace_s)
        self.http.should_exit = self.internal_http.should_exit = True
        for task in self._http_tasks:
            if not task.done():
                await task
        await self.coordinator.stop()
        await self.broker.stop()
        log.info("server.stopped")
