"""The FastAPI applications: routes, error handlers, OpenAPI at /docs. Built per broker (no module globals).

A broker serves two listeners, each its own app (`app.state.listener` says which):

* `public` (`broker.port`): the client API, health and /metrics. Broker-to-broker routes (`/internal/`) answer 404
  and `X-GoQueue-Forwarded` is ignored — except while a broker of the previous version is still a member (a rolling
  upgrade, `ClusterMembership.legacy_peers`), which knows no other way to reach this one.
* `internal` (`broker.internalPort`): only what brokers send each other — replica fetches and epoch-end queries,
  and the client routes a broker forwards (records, groups, the consumer admin read-outs). Every request must carry
  a broker credential (`broker_auth.py`) and is, by construction, forwarded: it is never forwarded again, and its
  client was authenticated and authorized by the broker it called (`auth.py` skips both here).
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import Depends, FastAPI

from goqueue import __version__
from goqueue.api.gatekeeper import Gatekeeper
from goqueue.api.http.broker_auth import BrokerCredentialCheck
from goqueue.api.http.deps import legacy_peers_only
from goqueue.api.http.errors import install_error_handlers
from goqueue.api.http.fast_produce import FastBatchProduce
from goqueue.api.http.fast_replica_fetch import FastReplicaFetch
from goqueue.api.http.request_limits import RequestLimits
from goqueue.api.http.routes import (
    admin,
    admin_consumers,
    auth,
    cluster,
    cluster_admin,
    groups,
    health,
    records,
    replica,
    security_admin,
    topics,
)
from goqueue.broker import Broker
from goqueue.consumers.router import GroupRouter
from goqueue.security.broker_credential import BrokerVerifier

Listener = Literal["public", "internal"]


def create_app(broker: Broker, group_router: GroupRouter | None = None,
               gatekeeper: Gatekeeper | None = None, listener: Listener = "public",
               verifier: BrokerVerifier | None = None, fast_paths: bool = True) -> FastAPI:
    """`verifier` checks the internal listener's broker credentials (None there: every request is refused).
    `fast_paths` False leaves every binary produce and follower fetch to its FastAPI route (the tests compare the
    two doors)."""
    app = FastAPI(
        title="GoQueue" if listener == "public" else "GoQueue broker-to-broker",
        version=__version__,
        description="Durable, replicated message broker. Errors are always "
                    '`{"error": {"code", "message", "retriable"}}`.')
    app.state.broker = broker
    app.state.groups = group_router  # None: the group routes answer NOT_READY
    app.state.gatekeeper = gatekeeper or Gatekeeper(broker.settings, lambda: broker.membership.view)
    app.state.listener = listener
    install_error_handlers(app)
    refusals = broker.metrics.limit_refusals
    if fast_paths:  # the common binary produce without FastAPI's routing (fast_produce.py); innermost layer
        app.add_middleware(FastBatchProduce, api=app)
        if listener == "internal":  # a follower's fetch likewise (fast_replica_fetch.py)
            app.add_middleware(FastReplicaFetch, api=app)
    if listener == "public":
        for module in (health, auth, topics, records, admin, security_admin, groups, admin_consumers, cluster,
                       cluster_admin):
            app.include_router(module.router)
        app.include_router(replica.router, dependencies=[Depends(legacy_peers_only)])
    else:
        for module in (replica, records, groups, admin_consumers):
            app.include_router(module.router)
        app.add_middleware(BrokerCredentialCheck, verifier=verifier or BrokerVerifier(None, b"", time.time),
                           on_refused=lambda: refusals.labels("internal", "credential").inc())
    # Added last, so outermost: an oversized body is refused before any other layer touches it.
    app.add_middleware(RequestLimits, limits=broker.settings.limits,
                       on_refused=lambda limit: refusals.labels(_port_label(listener), limit).inc())
    return app


def _port_label(listener: Listener) -> str:
    return "http" if listener == "public" else "internal"
