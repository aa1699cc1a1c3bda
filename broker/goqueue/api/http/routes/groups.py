"""Consumer groups over HTTP: declare, describe, membership (ordered), consume (long-poll), ack / nack / release
(shared), commit (ordered), offset resets, pause / resume.

Ordered mode: `POST …/members` (join) → consume with `memberId` + `generation` → `POST …/offsets` (commit) and
`POST …/members/{id}/heartbeat` within the session timeout; `DELETE …/members/{id}` leaves.
Shared mode: consume with a `consumerId` → `POST …/ack` with the lease ids (or `…/nack`, `…/release`).
A paused group answers consume with no records and `"paused": true` (HTTP 200): paused is a state.

Any broker answers: each route hands its call to `GroupRouter`, which serves it here when this broker coordinates the
group and forwards it to the coordinator otherwise (retriable NOT_COORDINATOR / NOT_READY while that moves).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from goqueue.api.http.deps import GroupsDep, peer_host
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
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    NackRequest,
    OffsetResetPlan,
    OffsetResetRequest,
    PauseResponse,
)

router = APIRouter(prefix="/v1/groups", tags=["groups"])


@router.get("", response_model=list[GroupSummary], summary="List consumer groups (of every coordinator)")
async def list_groups(groups: GroupsDep) -> list[GroupSummary]:
    return await groups.list_groups()


@router.put("/{group}", response_model=GroupInfo, summary="Declare a group: create it or update its settings")
async def declare_group(group: str, spec: GroupSpec, groups: GroupsDep) -> GroupInfo:
    return await groups.declare(group, spec)


@router.get("/{group}", response_model=GroupInfo, summary="Describe a group: state, members, offsets and lag")
async def describe_group(group: str, groups: GroupsDep) -> GroupInfo:
    return await groups.describe(group)


@router.delete("/{group}", status_code=204, summary="Delete a group and its offsets (409 with live members)")
async def delete_group(group: str, groups: GroupsDep, force: bool = False) -> Response:
    await groups.delete(group, force)
    return Response(status_code=204)


@router.post("/{group}/members", response_model=JoinResponse, summary="Join (or rejoin) an ordered group")
async def join(group: str, body: JoinRequest, request: Request, groups: GroupsDep) -> JoinResponse:
    return await groups.join(group, body, peer_host(request))


@router.post("/{group}/members/{member}/heartbeat", response_model=HeartbeatResponse, summary="Heartbeat")
async def heartbeat(group: str, member: str, body: HeartbeatRequest, groups: GroupsDep) -> HeartbeatResponse:
    return await groups.heartbeat(group, member, body.generation)


@router.delete("/{group}/members/{member}", status_code=204, summary="Leave the group (its partitions move)")
async def leave(group: str, member: str, groups: GroupsDep) -> Response:
    await groups.leave(group, member)
    return Response(status_code=204)


@router.post("/{group}/consume", response_model=ConsumeResponse, summary="Consume (long-poll with waitMs)")
async def consume(group: str, body: ConsumeRequest, request: Request, groups: GroupsDep) -> Response:
    response = await groups.consume(group, body, peer_host(request))
    return Response(response.model_dump_json(), media_type="application/json")


@router.post("/{group}/ack", response_model=AckResponse, summary="Shared mode: the messages are done")
async def ack(group: str, body: AckRequest, groups: GroupsDep) -> AckResponse:
    return await groups.ack(group, body)


@router.post("/{group}/nack", response_model=AckResponse,
             summary="Shared mode: redeliver after `delay` (dead letter after maxDeliveries)")
async def nack(group: str, body: NackRequest, groups: GroupsDep) -> AckResponse:
    return await groups.nack(group, body)


@router.post("/{group}/release", response_model=AckResponse,
             summary="Shared mode: give leases back unprocessed (not counted as a delivery)")
async def release(group: str, body: AckRequest, groups: GroupsDep) -> AckResponse:
    return await groups.release(group, body)


@router.post("/{group}/offsets", response_model=CommitResponse, summary="Ordered mode: commit offsets")
async def commit(group: str, body: CommitRequest, groups: GroupsDep) -> CommitResponse:
    return await groups.commit(group, body)


@router.post("/{group}/offsets/reset", response_model=OffsetResetPlan,
             summary="Reset offsets (409 while members live unless force; dryRun returns the plan)")
async def reset_offsets(group: str, body: OffsetResetRequest, groups: GroupsDep) -> OffsetResetPlan:
    return await groups.reset_offsets(group, body)


@router.post("/{group}/pause", response_model=PauseResponse, summary="Stop deliveries to this group")
async def pause(group: str, groups: GroupsDep) -> PauseResponse:
    return await groups.pause(group)


@router.post("/{group}/resume", response_model=PauseResponse, summary="Resume deliveries to this group")
async def resume(group: str, groups: GroupsDep) -> PauseResponse:
    return await groups.resume(group)
