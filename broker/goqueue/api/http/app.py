"""The FastAPI application: routes, error handlers, OpenAPI at /docs. Built per broker (no module globals)."""

from __future__ import annotations

from fastapi import FastAPI

from goqueue import __version__
from goqueue.api.gatekeeper import Gatekeeper
from goqueue.api.http.errors import install_error_handlers
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


def create_app(broker: Broker, group_router: GroupRouter | None = None,
               gatekeeper: Gatekeeper | None = None) -> FastAPI:
    app = FastAPI(
        title="GoQueue", version=__version__,
        description="Durable, replicated message broker. Errors are always "
                    '`{"error": {"code", "message", "retriable"}}`.')
    app.state.broker = broker
    app.state.groups = group_router  # None: the group routes answer NOT_READY
    app.state.gatekeeper = gatekeeper or Gatekeeper(broker.settings, lambda: broker.membership.view)
    install_error_handlers(app)
    for module in (health, auth, topics, records, admin, security_admin, groups, admin_consumers, cluster,
                   cluster_admin, replica):
        app.include_router(module.router)
    # Added last, so outermost: an oversized body is refused before any other layer touches it.
    refusals = broker.metrics.limit_refusals
    app.add_middleware(RequestLimits, limits=broker.settings.limits,
                       on_refused=lambda limit: refusals.labels("http", limit).inc())
    return app
