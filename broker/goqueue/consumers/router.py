"""`GroupRouter`: the front door of every consumer-group operation, for HTTP and gRPC alike.

An operation about group G is served by G's coordinator — the broker leading G's `__consumer_state` partition
(`ownership.py`). The router decides with `route_group` and then either calls the local `GroupCoordinator` or
forwards the operation to the coordinator's public HTTP API (`remote.py`), as `Broker.produce` forwards a produce
to a partition's leader. A forwarded request is served where it lands or refused with NOT_COORDINATOR (retriable),
never forwarded twice; while this broker is loading G's partition it answers NOT_READY (retriable). Clients retry
both after a short back-off.

Cluster-wide operations ask every coordinator for its part — the brokers leading a state partition, each answering
for the groups it coordinates — and merge: the group list, the inflight list, the metadata backup, and pause /
resume of all groups (the flag itself is cluster metadata; resume also lifts each coordinator's per-group pauses).
They refuse with NOT_COORDINATOR while a state partition has no leader, rather than answer with groups missing.

Local work runs with `forwarded_request` cleared: the coordinator's own reads of user partitions led elsewhere are
a new hop, forwarded once like any fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from goqueue.broker import Broker, forwarded_request
from goqueue.consumers.backup import backup_metadata
from goqueue.consumers.coordinator import GroupCoordinator
from goqueue.consumers.ownership import RouteKind, coordinator_brokers, route_group
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


class GroupRouter:
    def __init__(self, broker: Broker, coordinator: GroupCoordinator) -> None:
        self.broker = broker
        self.coordinator = coordinator

    # -- routing ---------------------------------------------------------------------------------------------

    def _remote(self, broker_id: int) -> RemoteCoordinator:
        return RemoteCoordinator(self.broker.membership.peers, self.broker.membership.broker_url(broker_id))

    async def _local(self, call: Callable[[], Awaitable[T]]) -> T:
        token = forwarded_request.set(False)
        try:
            return await call()
        finally:
            forwarded_request.reset(token)

    async def _dispatch(self, name: str, local: Callable[[GroupCoordinator], Awaitable[T]],
                        remote: Callable[[RemoteCoordinator], Awaitable[T]]) -> T:
        c = self.coordinator
        c.check_ready()
        index = c.store.partition_for(name)
        route = route_group(self.broker.broker_id, self.broker.registry.partition_state(STATE_TOPIC, index),
                            c.loading.owned.get(index), forwarded_request.get())
        if route.kind is RouteKind.LOCAL:
            return await self._local(lambda: local(c))
        if route.kind is RouteKind.REMOTE:
            assert route.broker_id is not None
            return await remote(self._remote(route.broker_id))
        if route.kind is RouteKind.LOADING:
            raise NotReady(f"group {name!r}: {route.reason}; retry shortly", group=name)
        raise NotCoordinator(f"group {name!r} has no coordinator here: {route.reason}; retry", group=name)

    async def _gather(self, local: Callable[[GroupCoordinator], Awaitable[T]],
                      remote: Callable[[RemoteCoordinator], Awaitable[T]]) -> list[T]:
        """This broker's part, then every other coordinator's (only this broker's when forwarded)."""
        c = self.coordinator
        c.check_ready()
        if forwarded_request.get():
            return [await self._local(lambda: local(c))]
        state_topic = self.broker.membership.view.topic(STATE_TOPIC)
        states = state_topic["partition_state"] if state_topic else {}
        leaders, leaderless = coordinator_brokers(states.values())
        if leaderless:
            raise NotCoordinator(f"{leaderless} of the {len(states)} {STATE_TOPIC} partitions have no leader "
                                 "right now, so some groups have no coordinator; retry")
        others = sorted(leaders - {self.broker.broker_id})
        parts = await asyncio.gather(self._local(lambda: local(c)), *(remote(self._remote(b)) for b in others))
        return list(parts)

    # -- one group -------------------------------------------------------------------------------------------

    async def declare(self, name: str, spec: GroupSpec) -> GroupInfo:
        return await self._dispatch(name, lambda c: c.declare(name, spec), lambda r: r.declare(name, spec))

    async def describe(self, name: str) -> GroupInfo:
        return await self._dispatch(name, lambda c: c.describe(name), lambda r: r.describe(name))

    async def delete(self, name: str, force: bool = False) -> None:
        await self._dispatch(name, lambda c: c.delete(name, force), lambda r: r.delete(name, force))

    async def join(self, name: str, request: JoinRequest, client_host: str) -> JoinResponse:
        # The member's host is the client's, wherever the join is served.
        request = request if request.host else request.model_copy(update={"host": client_host})
        return await self._dispatch(name, lambda c: c.join(name, request, client_host),
                                    lambda r: r.join(name, request))

    async def heartbeat(self, name: str, member_id: str, generation: int) -> HeartbeatResponse:
        async def local(c: GroupCoordinator) -> HeartbeatResponse:
            return c.heartbeat(name, member_id, generation)

        return await self._dispatch(name, local, lambda r: r.heartbeat(name, member_id, generation))

    async def leave(self, name: str, member_id: str) -> None:
        await self._dispatch(name, lambda c: c.leave(name, member_id), lambda r: r.leave(name, member_id))

    async def consume(self, name: str, request: ConsumeRequest, client_host: str) -> ConsumeResponse:
        return await self._dispatch(name, lambda c: c.delivery.consume(name, request, client_host),
                                    lambda r: r.consume(name, request, client_host))

    async def ack(self, name: str, request: AckRequest) -> AckResponse:
        return await self._dispatch(name, lambda c: c.delivery.ack(name, request), lambda r: r.ack(name, request))

    async def nack(self, name: str, request: NackRequest) -> AckResponse:
        return await self._dispatch(name, lambda c: c.delivery.nack(name, request), lambda r: r.nack(name, request))

    async def release(self, name: str, request: AckRequest) -> AckResponse:
        return await self._dispatch(name, lambda c: c.delivery.release(name, request),
                                    lambda r: r.release(name, request))

    async def commit(self, name: str, request: CommitRequest) -> CommitResponse:
        return await self._dispatch(name, lambda c: c.commit(name, request), lambda r: r.commit(name, request))

    async def reset_offsets(self, name: str, request: OffsetResetRequest) -> OffsetResetPlan:
        return await self._dispatch(name, lambda c: c.reset_offsets(name, request),
                                    lambda r: r.reset_offsets(name, request))

    async def pause(self, name: str) -> PauseResponse:
        return await self._dispatch(name, lambda c: c.pause(name), lambda r: r.set_paused(name, True))

    async def resume(self, name: str) -> PauseResponse:
        return await self._dispatch(name, lambda c: c.resume(name), lambda r: r.set_paused(name, False))

    # -- every group -----------------------------------------------------------------------------------------

    async def list_groups(self) -> list[GroupSummary]:
        parts = await self._gather(lambda c: c.list_groups(), lambda r: r.list_groups())
        return sorted({g.name: g for part in parts for g in part}.values(), key=lambda g: g.name)

    async def inflight(self, name: str | None, limit: int) -> InflightList:
        if name is not None:
            async def local(c: GroupCoordinator) -> InflightList:
                return c.inflight(name, limit)

            return await self._dispatch(name, local, lambda r: r.inflight(limit, name))

        async def all_local(c: GroupCoordinator) -> InflightList:
            return c.inflight(None, limit)

        parts = await self._gather(all_local, lambda r: r.inflight(limit))
        messages = sorted((m for part in parts for m in part.messages),
                          key=lambda m: (m.group, m.topic, m.partition, m.offset))
        total = sum(part.total for part in parts)
        return InflightList(messages=messages[:limit], total=total, truncated=total > min(len(messages), limit))

    async def backup(self) -> MetadataBackup:
        async def local(c: GroupCoordinator) -> MetadataBackup:
            return backup_metadata(c)

        parts = await self._gather(local, lambda r: r.backup())
        groups = sorted({g.name: g for part in parts for g in part.groups}.values(), key=lambda g: g.name)
        return parts[0].model_copy(update={"groups": groups})

    async def set_all_paused(self, paused: bool) -> PauseResponse:
        """Pause (resume) every group: the metadata flag, then each coordinator's per-group pauses on resume."""
        async def local(c: GroupCoordinator) -> PauseResponse:
            return await (c.pause(None) if paused else c.resume(None))

        parts = await self._gather(local, lambda r: r.set_all_paused(paused))
        return PauseResponse(paused=paused, all=True, groups=sorted({n for part in parts for n in part.groups}))

