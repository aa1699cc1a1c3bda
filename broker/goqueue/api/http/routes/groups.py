"""Consumer groups over HTTP: declare, describe, membership (ordered), consume (long-poll), ack / nack / release
(shared), commit (ordered), offset resets, pause / resume.

Ordered mode: `POST …/members` (join) → consume with `memberId` + `generation` → `POST …/offsets` (commit) and
`POST …/members/{id}/heartbeat` within the session timeout; `DELETE …/members/{id}` leaves.
Shared mode: consume with a `consumerId` → `POST …/ack` with the lease ids (or `…/nack`, `…/release`).
A paused group answers consume with no records and `"paused": true` (HTTP 200): paused is a state.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from goqueue.api.http.deps import CoordinatorDep, peer_host
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


@router.get("", response_model=list[GroupSummary], summary="List consumer groups")
async def list_groups(coordinator: CoordinatorDep) -> list[GroupSummary]:
    return coordinator.list_groups()


@router.put("/{group}", response_model=GroupInfo, summary="Declare a group: create it or update its settings")
async def declare_group(group: str, spec: GroupSpec, coordinator: CoordinatorDep) -> GroupInfo:
    return await coordinator.declare(group, spec)


@router.get("/{group}", response_model=GroupInfo, summary="Describe a group: state, members, offsets and lag")
async def describe_group(group: str, coordinator: CoordinatorDep) -> GroupInfo:
    return coordinator.describe(group)


@router.delete("/{group}", status_code=204, summary="Delete a group and its offsets (409 with live members)")
async def delete_group(group: str, coordinator: CoordinatorDep, force: bool = False) -> Response:
    await coordinator.delete(group, force)
    return Response(status_code=204)


@router.post("/{group}/members", response_model=JoinResponse, summary="Join (or rejoin) an ordered group")
async def join(group: str, body: JoinRequest, request: Request, coordinator: CoordinatorDep) -> JoinResponse:
    return await coordinator.join(group, body, peer_host(request))


@router.post("/{group}/members/{member}/heartbeat", response_model=HeartbeatResponse, summary="Heartbeat")
async def heartbeat(group: str, member: str, body: HeartbeatRequest,
                    coordinator: CoordinatorDep) -> HeartbeatResponse:
    return coordinator.heartbeat(group, member, body.generation)


@router.delete("/{group}/members/{member}", status_code=204, summary="Leave the group (its partitions move)")
async def leave(group: str, member: str, coordinator: CoordinatorDep) -> Response:
    await coordinator.leave(group, member)
    return Response(status_code=204)


@router.post("/{group}/consume", response_model=ConsumeResponse, summary="Consume (long-poll with waitMs)")
async def consume(group: str, body: ConsumeRequest, request: Request, coordinator: CoordinatorDep) -> Response:
    response = await coordinator.delivery.consume(group, body, peer_host(request))
    return Response(response.model_dump_json(), media_type="application/json")


@router.post("/{group}/ack", response_model=AckResponse, summary="Shared mode: the messages are done")
async def ack(group: str, body: AckRequest, coordinator: CoordinatorDep) -> AckResponse:
    return await coordinator.delivery.ack(group, body)


@router.post("/{group}/nack", response_model=AckResponse,
             summary="Shared mode: redeliver after `delay` (dead letter after maxDeliveries)")
async def nack(group: str, body: NackRequest, coordinator: CoordinatorDep) -> AckResponse:
    return await coordinator.delivery.nack(group, body)


@router.post("/{group}/release", response_model=AckResponse,
             summary="Shared mode: give leases back unprocessed (not counted as a delivery)")
async def release(group: str, body: AckRequest, coordinator: CoordinatorDep) -> AckResponse:
    return await coordinator.delivery.release(group, body)


@router.post("/{group}/offsets", response_model=CommitResponse, summary="Ordered mode: commit offsets")
async def commit(group: str, body: CommitRequest, coordinator: CoordinatorDep) -> CommitResponse:
    return await coordinator.commit(group, body)


@router.post("/{group}/offsets/reset", response_model=OffsetResetPlan,
             summary="Reset offsets (409 while members live unless force; dryRun returns the plan)")
async def reset_offsets(group: str, body: OffsetResetRequest, coordinator: CoordinatorDep) -> OffsetResetPlan:
    return await coordinator.reset_offsets(group, body)


@router.post("/{group}/pause", response_model=PauseResponse, summary="Stop deliveries to this group")
async def pause(group: str, coordinator: CoordinatorDep) -> PauseResponse:
    return await coordinator.pause(group)


@router.post("/{group}/resume", response_model=PauseResponse, summary="Resume deliveries to this group")
async def resume(group: str, coordinator: CoordinatorDep) -> PauseResponse:
    return await coordinator.resume(group)

