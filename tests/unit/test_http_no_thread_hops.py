"""No HTTP route hands work to a worker thread: every dependency and endpoint of both listeners' apps is a coroutine
function. FastAPI runs a plain `def` dependency in its thread pool — one thread round trip per dependency per
request, which was the largest cost of a small HTTP produce (issue 18's profile, docs/PERFORMANCE.md)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest
from fastapi.dependencies.models import Dependant

from goqueue.api.http.app import create_app
from goqueue.config import Settings
from goqueue.metrics import BrokerMetrics

pytestmark = pytest.mark.unit


def _calls(dependant: Dependant, where: str) -> list[tuple[str, object]]:
    found = [(where, dependant.call)] if dependant.call is not None else []
    for sub in dependant.dependencies:
        found += _calls(sub, where)
    return found


def _dependants(routes: list[object]) -> list[tuple[str, Dependant]]:
    """Each API route's dependant, with the dependencies of the router that included it (FastAPI keeps an included
    router's routes behind `effective_route_contexts`)."""
    found = []
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for context in contexts() if contexts is not None else [route]:
            dependant = getattr(context, "dependant", None)
            if dependant is not None:
                found.append((f"{sorted(getattr(context, 'methods', ()))} {getattr(context, 'path', '?')}", dependant))
    return found


@pytest.mark.parametrize("listener", ["public", "internal"])
def test_every_route_dependency_runs_on_the_event_loop(listener: str) -> None:
    stand_in = SimpleNamespace(settings=Settings(), metrics=BrokerMetrics())  # the routes are all that is needed
    app = create_app(broker=stand_in, listener=listener)  # type: ignore[arg-type]
    calls = [call for where, dependant in _dependants(app.routes) for call in _calls(dependant, where)]
    assert len(calls) > 50  # the walk reached the routes and their dependencies
    threaded = sorted({f"{where}: {getattr(call, '__qualname__', call)}" for where, call in calls
                       if not inspect.iscoroutinefunction(call)})
    assert not threaded, "run in FastAPI's thread pool:\n" + "\n".join(threaded)
