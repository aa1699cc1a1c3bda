"""Request-scoped access to the broker objects the app was built with (no globals)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from goqueue.broker import Broker


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


BrokerDep = Annotated[Broker, Depends(_broker)]
