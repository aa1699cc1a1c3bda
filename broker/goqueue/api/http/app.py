"""The FastAPI application: routes, error handlers, OpenAPI at /docs. Built per broker (no module globals)."""

from __future__ import annotations

from fastapi import FastAPI

from goqueue import __version__
from goqueue.api.http.errors import install_error_handlers
from goqueue.api.http.routes import admin, admin_consumers, cluster, groups, health, records, topics
from goqueue.broker import Broker
from goqueue.consumers.coordinator import GroupCoordinator


def create_app(broker: Broker, coordinator: GroupCoordinator | None = None) -> FastAPI:
    app = FastAPI(
        title="GoQueue", version=__version__,
        description="Durable, replicated message broker. Errors are always "
                    '`{"error": {"code", "message", "retriable"}}`.')
    app.state.broker = broker
    app.state.coordinator = coordinator  # None: the group routes answer NOT_READY
    install_error_handlers(app)
    for module in (health, topics, records, admin, groups, admin_consumers, cluster):
        app.include_router(module.router)
    return app
