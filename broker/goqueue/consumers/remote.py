"""`RemoteCoordinator`: a group's coordinator on another broker, spoken to through that broker's public HTTP API.

Each method is the forwarded twin of a `GroupCoordinator` operation: the same route a client would call, with the
request model as JSON and `X-GoQueue-Forwarded: 1` (the host's `PeerCalls` marks every call), so the peer serves it
itself or answers NOT_COORDINATOR — it never forwards it again. The client's own address travels in
`X-GoQueue-Client-Host`, so a member's `host` is the client's, not the forwarding broker's. Errors come back as the
`GoQueueError` the peer raised; an unreachable peer is `Unavailable` (retriable).

Paths quote group and member names: group names are `[a-zA-Z0-9._-]`, but member ids embed a client id of any
characters.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from goqueue.consumers.port import PeerCalls
from goqueue.models import (
    ANSWER,
    AckRequest,
    AckResponse,
    CommitRequest,
    CommitResponse,
    ConsumeRequest,
    ConsumeResponse,
    GroupInfo,
    GroupSpec,
    GroupSummary,
    HeartbeatRequest,
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

CLIENT_HOST_HEADER = "X-GoQueue-Client-Host"
LONG_POLL_MARGIN_S = 10.0  # a forwarded long-poll may take its wait plus this before the forwarder gives up

M = TypeVar("M", bound=BaseModel)


def _body(model: BaseModel | None) -> Any:
    return None if model is None else model.model_dump(by_alias=True, exclude_none=True, mode="json")


class RemoteCoordinator:
    def __init__(self, peers: PeerCalls, base_url: str) -> None:
        self.peers = peers
        self.base_url = base_url

    def _group_url(self, group: str, suffix: str = "") -> str:
        return f"{self.base_url}/v1/groups/{quote(group, safe='')}{suffix}"

    async def _call(self, method: str, url: str, model: type[M], body: BaseModel | None = None, *,
                    params: dict[str, Any] | None = None, client_host: str | None = None,
                    timeout_s: float | None = None) -> M:
        headers = {CLIENT_HOST_HEADER: client_host} if client_host else None
        answer = await self.peers.call_json(method, url, body=_body(body), params=params, headers=headers,
                                            timeout_s=timeout_s)
        return model.model_validate(answer, context=ANSWER)  # a newer peer may add fields

    # -- one group --------------------------------------------------------------------------------------------

    async def declare(self, name: str, spec: GroupSpec) -> GroupInfo:
        return await self._call("PUT", self._group_url(name), GroupInfo, spec)

    async def describe(self, name: str) -> GroupInfo:
        return await self._call("GET", self._group_url(name), GroupInfo)

    async def delete(self, name: str, force: bool) -> None:
        await self.peers.call_json("DELETE", self._group_url(name), params={"force": "true" if force else None})

    async def join(self, name: str, request: JoinRequest) -> JoinResponse:
        return await self._call("POST", self._group_url(name, "/members"), JoinResponse, request)

    async def heartbeat(self, name: str, member_id: str, generation: int) -> HeartbeatResponse:
        url = self._group_url(name, f"/members/{quote(member_id, safe='')}/heartbeat")
        return await self._call("POST", url, HeartbeatResponse, HeartbeatRequest(generation=generation))

    async def leave(self, name: str, member_id: str) -> None:
        await self.peers.call_json("DELETE", self._group_url(name, f"/members/{quote(member_id, safe='')}"))

    async def consume(self, name: str, request: ConsumeRequest, client_host: str) -> ConsumeResponse:
        return await self._call("POST", self._group_url(name, "/consume"), ConsumeResponse, request,
                                client_host=client_host, timeout_s=request.wait_ms / 1000 + LONG_POLL_MARGIN_S)

    async def ack(self, name: str, request: AckRequest) -> AckResponse:
        return await self._call("POST", self._group_url(name, "/ack"), AckResponse, request)

    async def nack(self, name: str, request: NackRequest) -> AckResponse:
        return await self._call("POST", self._group_url(name, "/nack"), AckResponse, request)

    async def release(self, name: str, request: AckRequest) -> AckResponse:
        return await self._call("POST", self._group_url(name, "/release"), AckResponse, request)

    async def commit(self, name: str, request: CommitRequest) -> CommitResponse:
        return await self._call("POST", self._group_url(name, "/offsets"), CommitResponse, request)

    async def reset_offsets(self, name: str, request: OffsetResetRequest) -> OffsetResetPlan:
        return await self._call("POST", self._group_url(name, "/offsets/reset"), OffsetResetPlan, request)

    async def set_paused(self, name: str, paused: bool) -> PauseResponse:
        return await self._call("POST", self._group_url(name, "/pause" if paused else "/resume"), PauseResponse)

    # -- this peer's part of a cluster-wide read-out or action ------------------------------------------------

    async def list_groups(self) -> list[GroupSummary]:
        answer = await self.peers.call_json("GET", f"{self.base_url}/v1/groups")
        return [GroupSummary.model_validate(g, context=ANSWER) for g in answer]

    async def inflight(self, limit: int, group: str | None = None) -> InflightList:
        """One group's unacked messages, or (group None) those of every group the peer coordinates."""
        return await self._call("GET", f"{self.base_url}/v1/admin/inflight", InflightList,
                                params={"limit": limit, "group": group})

    async def backup(self) -> MetadataBackup:
        return await self._call("GET", f"{self.base_url}/v1/admin/metadata", MetadataBackup)

    async def set_all_paused(self, paused: bool) -> PauseResponse:
        path = "/v1/admin/consumers/pause" if paused else "/v1/admin/consumers/resume"
        return await self._call("POST", f"{self.base_url}{path}", PauseResponse)
