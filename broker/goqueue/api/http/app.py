"""The FastAPI application: routes, error handlers, OpenAPI at /docs. Built per broker (no module globals)."""

from __future__ import annotations

from fastapi import FastAPI

from goqueue import __version__
from goqueue.api.http.errors import install_error_handlers
from goqueue.api.http.routes import admin, health, records, topics
from goqueue.broker import Broker


def create_app(broker: Broker) -> FastAPI:
    app = FastAPI(
        title="GoQueue", version=__version__,
        description="Durable, replicated message broker. Errors are always "
                    '`{"error": {"code", "message", "retriable"}}`.')
    app.state.broker = broker
    install_error_handlers(app)
    for module in (health, topics, records, admin):
        app.include_router(module.router)
    return app
