"""Request-scoped access to the broker objects the app was built with (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from goqueue.broker import Broker, forwarded_request
from goqueue.consumers.remote import CLIENT_HOST_HEADER
from goqueue.consumers.router import GroupRouter
from goqueue.errors import NotReady


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


BrokerDep = Annotated[Broker, Depends(_broker)]


def _groups(request: Request) -> GroupRouter:
    groups: GroupRouter | None = getattr(request.app.state, "groups", None)
    if groups is None:
        raise NotReady("this server runs without consumer groups")
    return groups


GroupsDep = Annotated[GroupRouter, Depends(_groups)]


def peer_host(request: Request) -> str:
    """The client's address, the default `host` of a group member: for a request another broker forwarded, the
    address that broker saw (it sends it along), not the forwarding broker's."""
    if forwarded_request.get() and (original := request.headers.get(CLIENT_HOST_HEADER)):
        return original
    return request.client.host if request.client else "unknown"
