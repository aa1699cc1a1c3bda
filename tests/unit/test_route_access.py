"""Every HTTP route of the public listener, and every gRPC rpc, resolves its caller (and so authenticates, and checks
what it declares), except the few that must stay open: one that forgets it fails here instead of serving anyone."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from goqueue.api.grpc.server import SERVICE
from goqueue.api.grpc.servicer import GoQueueServicer
from goqueue.api.http import auth, routes

pytestmark = pytest.mark.unit

OPEN = {"/healthz", "/readyz", "/metrics", "/v1/version", "/v1/auth/scram/start", "/v1/auth/scram/finish"}


def resolves_caller(dependant: Dependant) -> bool:
    return any(d.call is auth._access or resolves_caller(d) for d in dependant.dependencies)


def public_routes() -> list[APIRoute]:
    """Every route of every module of goqueue.api.http.routes (a new module is found too), but the replica routes
    brokers call on their internal listener."""
    found: list[APIRoute] = []
    for module_info in pkgutil.iter_modules(routes.__path__):
        module = importlib.import_module(f"{routes.__name__}.{module_info.name}")
        found.extend(r for r in module.router.routes if isinstance(r, APIRoute) and not r.path.startswith("/internal/"))
    return found


def test_every_public_route_but_the_open_ones_authenticates_its_caller() -> None:
    routes = public_routes()
    assert len(routes) > 40
    unchecked = sorted(f"{sorted(r.methods or ())} {r.path}" for r in routes if r.path not in OPEN
                       and not resolves_caller(r.dependant))
    assert unchecked == []
    opened = sorted(r.path for r in routes if r.path in OPEN and resolves_caller(r.dependant))
    assert opened == []


def test_every_rpc_but_the_scram_steps_asks_the_gatekeeper_first() -> None:
    """A source check (an rpc needs a broker to run): each method of the service resolves its caller."""
    unchecked = []
    for method in SERVICE.methods:
        source = inspect.getsource(getattr(GoQueueServicer, method.name))
        if method.name in {"ScramStart", "ScramFinish"}:
            assert "_caller(" not in source
        elif not any(call in source for call in ("self._caller(context)", "self._member(context", "self._consumer(")):
            unchecked.append(method.name)
    assert unchecked == []
