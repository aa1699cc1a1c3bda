"""Request-scoped access to the broker objects the app was built with (no globals).

Every dependency here (and in `auth.py`) is `async def`: FastAPI runs a plain `def` dependency in its worker-thread
pool, one thread round trip per dependency per request — on a small produce that hand-off was the largest cost of
the HTTP path (issue 18's profile, docs/PERFORMANCE.md). None of them blocks, so they run on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Request
from pydantic import BeforeValidator

from goqueue import limits
from goqueue.broker import Broker
from goqueue.consumers.remote import CLIENT_HOST_HEADER
from goqueue.consumers.router import GroupRouter
from goqueue.errors import NotFound, NotReady
from goqueue.models import within
from goqueue.replication.peers import FORWARDED_HEADER


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


async def _broker_dep(request: Request) -> Broker:
    return _broker(request)


BrokerDep = Annotated[Broker, Depends(_broker_dep)]


async def _forwarded(request: Request) -> bool:
    return forwarded(request.app.state.listener, _broker(request), FORWARDED_HEADER in request.headers)


def forwarded(listener: str, broker: Broker, has_forwarded_header: bool) -> bool:
    """Whether a request was forwarded by another broker (it is then never forwarded again)."""
    if listener == "internal":
        return True  # only brokers get past its credential check
    # The client port: only a broker of the previous version forwards there (a rolling upgrade); otherwise the
    # header is anyone's to send and means nothing.
    return has_forwarded_header and bool(broker.membership.legacy_peers())


# True for a request another broker sent on (it is then never forwarded again); passed to the broker explicitly.
ForwardedDep = Annotated[bool, Depends(_forwarded)]


async def legacy_peers_only(request: Request) -> None:
    """The broker-to-broker routes on the client port exist only for brokers of the previous version."""
    if not _broker(request).membership.legacy_peers():
        raise NotFound(f"no route {request.url.path} on the client port (broker-to-broker calls go to "
                       "broker.internalPort)")


async def _groups(request: Request) -> GroupRouter:
    groups: GroupRouter | None = getattr(request.app.state, "groups", None)
    if groups is None:
        raise NotReady("this server runs without consumer groups")
    return groups


GroupsDep = Annotated[GroupRouter, Depends(_groups)]


def peer_host(request: Request, forwarded: bool) -> str:
    """The client's address, the default `host` of a group member: for a request another broker forwarded (its
    `forwarded` header), the address that broker saw (it sends it along), not the forwarding broker's."""
    if forwarded and (original := request.headers.get(CLIENT_HOST_HEADER)):
        return original
    return request.client.host if request.client else "unknown"


async def _peer_host(request: Request, forwarded: ForwardedDep) -> str:
    return peer_host(request, forwarded)


# The client's address (`peer_host`), for the group routes that record a member's host.
PeerHostDep = Annotated[str, Depends(_peer_host)]


def _true_or_false(value: Any) -> Any:
    # Query values are text; FastAPI alone also takes 0/1/on/off/yes/no, so a typo such as `force=0` meant
    # something. Only the JSON spellings are flags here, as in request bodies (StrictBool).
    if isinstance(value, str):
        if value in {"true", "false"}:
            return value == "true"
        raise ValueError(f"expected true or false, got {value!r}")
    return value


Flag = Annotated[bool, BeforeValidator(_true_or_false)]
"""A query flag: `true` or `false` only."""

PartitionPath = Annotated[int, Path(description="Partition index.", **within(limits.PARTITION))]
