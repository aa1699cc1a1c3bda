"""Request-scoped access to the broker objects the app was built with (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from goqueue.broker import Broker
from goqueue.consumers.coordinator import GroupCoordinator
from goqueue.errors import NotReady


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


BrokerDep = Annotated[Broker, Depends(_broker)]


def _coordinator(request: Request) -> GroupCoordinator:
    coordinator: GroupCoordinator | None = getattr(request.app.state, "coordinator", None)
    if coordinator is None:
        raise NotReady("this server runs without consumer groups")
    return coordinator


CoordinatorDep = Annotated[GroupCoordinator, Depends(_coordinator)]


def peer_host(request: Request) -> str:
    """The client's address, the default `host` of a group member."""
    return request.client.host if request.client else "unknown"
