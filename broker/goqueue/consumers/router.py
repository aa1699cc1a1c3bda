"""`GroupRouter`: the front door of every consumer-group operation, for HTTP and gRPC alike.

An operation about group G is served by G's coordinator — the broker leading G's `__consumer_state` partition
(`ownership.py`). The router decides with `route_group` and then either calls the local `GroupCoordinator` or
forwards the operation to the coordinator's public HTTP API (`remote.py`), as a produce is forwarded to a
partition's leader. A forwarded request is served where it lands or refused with NOT_COORDINATOR (retriable),
never forwarded twice; while this broker is loading G's partition it answers NOT_READY (retriable). Clients retry
both after a short back-off.

Cluster-wide operations ask every coordinator for its part — the brokers leading a state partition, each answering
for the groups it coordinates — and merge: the group list, the inflight list, the metadata backup, and pause /
resume of all groups (the flag itself is cluster metadata; resume also lifts each coordinator's per-group pauses).
They refuse with NOT_COORDINATOR while a state partition has no leader, rather than answer with groups missing.

Where a request came from is an argument, not ambient state: every method takes `forwarded`, which the adapters
set — the HTTP routes from the `X-GoQueue-Forwarded` header another broker sends (`api/http/deps.ForwardedDep`),
gRPC always False (brokers forward over HTTP only). The coordinator's own reads of user partitions led elsewhere
are a new hop of their own, forwarded once like any fetch (the host's `Records`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from goqueue.consumers.coordinator import GroupCoordinator
from goqueue.consumers.ownership import RouteKind, coordinator_brokers, route_group
from goqueue.consumers.port import ClusterView, Peers, TopicLookup
from goqueue.consumers.remote import RemoteCoordinator
from goqueue.consumers.state_store import STATE_TOPIC
from goqueue.errors import NotCoordinator, NotReady
from goqueue.models import (
    AckRequest,
    AckResponse,
    CommitRequest,
    CommitResponse,
    ConsumeRequest,
    ConsumeResponse,
    GroupInfo,
    GroupSpec,
    GroupSummary,
    HeartbeatResponse,
    InflightList,
    JoinRequest,
    JoinResponse,
    MetadataBackup,
    NackRequest,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
)

T = TypeVar("T")


class RouterHost(ClusterView, Peers, TopicLookup, Protocol):
    """Who leads the state partitions, how to reach them; and the topics (a metadata restore creates them)."""


class GroupRouter:
    def __init__(self, host: RouterHost, coordinator: GroupCoordinator) -> None:
        self.host = host
        self.coordinator = coordinator

    # -- routing ---------------------------------------------------------------------------------------------

    def _remote(self, broker_id: int) -> RemoteCoordinator:
        return RemoteCoordinator(self.host.peers, self.host.broker_url(broker_id))

    async def _dispatch(self, name: str, forwarded: bool, local: Callable[[GroupCoordinator], Awaitable[T]],
                        remote: Callable[[RemoteCoordinator], Awaitable[T]]) -> T:
        c = self.coordinator
        c.check_ready()
        index = c.store.partition_for(name)
        route = route_group(self.host.broker_id, self.host.partition_leaders(STATE_TOPIC).get(index),
                            c.table.owned.get(index), forwarded)
        if route.kind is RouteKind.LOCAL:
            return await local(c)
        if route.kind is RouteKind.REMOTE:
            assert route.broker_id is not None
            return await remote(self._remote(route.broker_id))
        if route.kind is RouteKind.LOADING:
            raise NotReady(f"group {name!r}: {route.reason}; retry shortly", group=name)
        raise NotCoordinator(f"group {name!r} has no coordinator here: {route.reason}; retry", group=name)

    async def _gather(self, forwarded: bool, local: Callable[[GroupCoordinator], Awaitable[T]],
                      remote: Callable[[RemoteCoordinator], Awaitable[T]]) -> list[T]:
        """This broker's part, then every other coordinator's (only this broker's when forwarded)."""
        c = self.coordinator
        c.check_ready()
        if forwarded:
            return [await local(c)]
        states = self.host.partition_leaders(STATE_TOPIC)
        leaders, leaderless = coordinator_brokers(states.values())
        if leaderless:
            raise NotCoordinator(f"{leaderless} of the {len(states)} {STATE_TOPIC} partitions have no leader "
                                 "right now, so some groups have no coordinator; retry")
        others = sorted(leaders - {self.host.broker_id})
        parts = await asyncio.gather(local(c), *(remote(self._remote(b)) for b in others))
        return list(parts)

    # -- one group -------------------------------------------------------------------------------------------

    async def declare(self, name: str, spec: GroupSpec, *, forwarded: bool) -> GroupInfo:
        return await self._dispatch(name, forwarded, lambda c: c.declare(name, spec), lambda r: r.declare(name, spec))

    async def describe(self, name: str, *, forwarded: bool) -> GroupInfo:
        return await self._dispatch(name, forwarded, lambda c: c.describe(name), lambda r: r.describe(name))

    async def delete(self, name: str, force: bool = False, *, forwarded: bool) -> None:
        await self._dispatch(name, forwarded, lambda c: c.delete(name, force), lambda r: r.delete(name, force))

    async def join(self, name: str, request: JoinRequest, client_host: str, *, forwarded: bool) -> JoinResponse:
        # The member's host is the client's, wherever the join is served.
        request = request if request.host else request.model_copy(update={"host": client_host})
        return await self._dispatch(name, forwarded, lambda c: c.join(name, request, client_host),
                                    lambda r: r.join(name, request))

    async def heartbeat(self, name: str, member_id: str, generation: int, *, forwarded: bool) -> HeartbeatResponse:
        async def local(c: GroupCoordinator) -> HeartbeatResponse:
            return c.heartbeat(name, member_id, generation)

        return await self._dispatch(name, forwarded, local, lambda r: r.heartbeat(name, member_id, generation))

    async def leave(self, name: str, member_id: str, *, forwarded: bool) -> None:
        await self._dispatch(name, forwarded, lambda c: c.leave(name, member_id), lambda r: r.leave(name, member_id))

    async def consume(self, name: str, request: ConsumeRequest, client_host: str, *,
                      forwarded: bool) -> ConsumeResponse:
        return await self._dispatch(name, forwarded, lambda c: c.delivery.consume(name, request, client_host),
                                    lambda r: r.consume(name, request, client_host))

    async def ack(self, name: str, request: AckRequest, *, forwarded: bool) -> AckResponse:
        return await self._dispatch(name, forwarded, lambda c: c.delivery.ack(name, request),
                                    lambda r: r.ack(name, request))

    async def nack(self, name: str, request: NackRequest, *, forwarded: bool) -> AckResponse:
        return await self._dispatch(name, forwarded, lambda c: c.delivery.nack(name, request),
                                    lambda r: r.nack(name, request))

    async def release(self, name: str, request: AckRequest, *, forwarded: bool) -> AckResponse:
        return await self._dispatch(name, forwarded, lambda c: c.delivery.release(name, request),
                                    lambda r: r.release(name, request))

    async def commit(self, name: str, request: CommitRequest, *, forwarded: bool) -> CommitResponse:
        return await self._dispatch(name, forwarded, lambda c: c.commit(name, request),
                                    lambda r: r.commit(name, request))

    async def reset_offsets(self, name: str, request: OffsetResetRequest, *, forwarded: bool) -> OffsetResetPlan:
        return await self._dispatch(name, forwarded, lambda c: c.reset_offsets(name, request),
                                    lambda r: r.reset_offsets(name, request))

    async def pause(self, name: str, *, forwarded: bool) -> PauseResponse:
        return await self._dispatch(name, forwarded, lambda c: c.pause(name), lambda r: r.set_paused(name, True))

    async def resume(self, name: str, *, forwarded: bool) -> PauseResponse:
        return await self._dispatch(name, forwarded, lambda c: c.resume(name), lambda r: r.set_paused(name, False))

    # -- every group -----------------------------------------------------------------------------------------

    async def list_groups(self, *, forwarded: bool) -> list[GroupSummary]:
        parts = await self._gather(forwarded, lambda c: c.list_groups(), lambda r: r.list_groups())
        return sorted({g.name: g for part in parts for g in part}.values(), key=lambda g: g.name)

    async def inflight(self, name: str | None, limit: int, *, forwarded: bool) -> InflightList:
        if name is not None:
            async def local(c: GroupCoordinator) -> InflightList:
                return c.inflight(name, limit)

            return await self._dispatch(name, forwarded, local, lambda r: r.inflight(limit, name))

        async def all_local(c: GroupCoordinator) -> InflightList:
            return c.inflight(None, limit)

        parts = await self._gather(forwarded, all_local, lambda r: r.inflight(limit))
        messages = sorted((m for part in parts for m in part.messages),
                          key=lambda m: (m.group, m.topic, m.partition, m.offset))
        total = sum(part.total for part in parts)
        return InflightList(messages=messages[:limit], total=total, truncated=total > min(len(messages), limit))

    async def backup(self, *, forwarded: bool) -> MetadataBackup:
        async def local(c: GroupCoordinator) -> MetadataBackup:
            return c.backup()

        parts = await self._gather(forwarded, local, lambda r: r.backup())
        groups = sorted({g.name: g for part in parts for g in part.groups}.values(), key=lambda g: g.name)
        return parts[0].model_copy(update={"groups": groups})

    async def set_all_paused(self, paused: bool, *, forwarded: bool) -> PauseResponse:
        """Pause (resume) every group: the metadata flag, then each coordinator's per-group pauses on resume."""
        async def local(c: GroupCoordinator) -> PauseResponse:
            return await (c.pause(None) if paused else c.resume(None))

        parts = await self._gather(forwarded, local, lambda r: r.set_all_paused(paused))
        return PauseResponse(paused=paused, all=True, groups=sorted({n for part in parts for n in part.groups}))
