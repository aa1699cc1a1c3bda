"""The HTTP side of the gatekeeper: the caller of a request (`AccessDep`) and the route dependencies checking it.

A request on the public listener is authenticated from its `Authorization: Bearer <token>` header (none: the anonymous
principal, where allowed) and authorized before the route acts. A request on the internal listener
(`app.state.listener == "internal"`, broker credentials checked by its middleware) was authorized by the broker the
client called, and is not checked again. `AUTH_ERRORS` documents the two refusals on every protected route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, params
from starlette.types import Scope

from goqueue.api.gatekeeper import Access, Gatekeeper
from goqueue.api.http.client_certificate import client_certificate_name
from goqueue.api.http.errors import error_responses
from goqueue.errors import Forbidden, Unauthenticated
from goqueue.security.acls import CLUSTER, Operation, Resource, ResourceType

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    status: response for status, response in error_responses(Unauthenticated, Forbidden).items()
    if status in (Unauthenticated.http_status, Forbidden.http_status)}


def gatekeeper(request: Request) -> Gatekeeper:
    keeper: Gatekeeper = request.app.state.gatekeeper
    return keeper


async def _access(request: Request) -> Access:  # async: on the request's task, where quotas read its principal
    return caller_access(gatekeeper(request), getattr(request.app.state, "listener", "public"),
                         request.headers.get("authorization"), request.scope)


def caller_access(keeper: Gatekeeper, listener: str, authorization: str | None, scope: Scope) -> Access:
    """The caller of a request (its `Authorization` value and its connection's verified client certificate); on
    the internal listener nobody's: the broker that forwarded it checked its caller."""
    if listener == "internal":
        return Access(keeper, None)
    return Access(keeper, keeper.principal(authorization, client_certificate_name(scope)))


AccessDep = Annotated[Access, Depends(_access)]
AUTHENTICATED = Depends(_access)  # a route dependency: the caller is let in (no ACL needed)


def require(resource_type: ResourceType, operation: Operation, path_param: str = "") -> params.Depends:
    """A route dependency: the caller may do `operation` to the resource named by the route's `path_param` (the
    cluster when there is none)."""

    async def check(request: Request, access: AccessDep) -> None:  # async: no worker-thread hop (deps.py)
        resource = Resource(resource_type, request.path_params[path_param]) if path_param else CLUSTER
        access.check(resource, operation)

    return params.Depends(check)


CLUSTER_ADMIN = require(ResourceType.CLUSTER, Operation.ADMIN)

