"""Consumer groups over HTTP: declare, describe, membership (ordered), consume (long-poll), ack / nack / release
(shared), commit (ordered), offset resets, pause / resume.

Ordered mode: `POST …/members` (join) → consume with `memberId` + `generation` → `POST …/offsets` (commit) and
`POST …/members/{id}/heartbeat` within the session timeout; `DELETE …/members/{id}` leaves.
Shared mode: consume with a `consumerId` → `POST …/ack` with the lease ids (or `…/nack`, `…/release`).
A paused group answers consume with no records and `"paused": true` (HTTP 200): paused is a state.

Any broker answers: each route hands its call to `GroupRouter`, which serves it here when this broker coordinates the
group and forwards it to the coordinator otherwise (retriable NOT_COORDINATOR / NOT_READY while that moves). Each
passes `forwarded` (`ForwardedDep`: another broker sent the request on, so it is never forwarded again).

Access (`security.acls`), checked at the broker the client called: membership, consume, ack/nack/release and commits
need `consume` on the group — and a join or a consume naming topics `consume` on each; describe, delete and offset
resets their own operation; declaring a group's settings, pause and resume `alter`; the list shows describable groups.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, params

from goqueue.api.http.auth import AUTH_ERRORS, AccessDep, require
from goqueue.api.http.body import CheckedBodyRoute
from goqueue.api.http.deps import Flag, ForwardedDep, GroupsDep, PeerHostDep
from goqueue.api.http.errors import error_responses
from goqueue.errors import (
    DiskFull,
    FencedGeneration,
    GroupHasMembers,
    GroupNotFound,
    InflightLimitReached,
    InvalidConfig,
    InvalidTopicName,
    LeaseNotFound,
    NotCoordinator,
    NotEnoughReplicas,
    NotLeader,
    NotReady,
    OffsetOutOfRange,
    Overloaded,
    PartitionNotFound,
    PartitionOffline,
    RecordTooLarge,
    StorageError,
    Timeout,
    TopicNotFound,
    Unavailable,
    UnknownMember,
)
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
from goqueue.security import acls
from goqueue.security.acls import Operation, ResourceType, topic

router = APIRouter(prefix="/v1/groups", tags=["groups"], route_class=CheckedBodyRoute, responses=AUTH_ERRORS)


def _on_group(operation: Operation) -> list[params.Depends]:
    return [require(ResourceType.GROUP, operation, "group")]

# Every group route reaches the group's coordinator (here, or forwarded and relayed), which may be moving, and
# writes the group's state to __consumer_state with acks=all before it answers.
_COORDINATOR = (NotReady, NotCoordinator, NotLeader, Timeout, Unavailable, Overloaded, NotEnoughReplicas,
                PartitionOffline, DiskFull, StorageError)
_GROUP = (GroupNotFound, *_COORDINATOR)
_MEMBER = (UnknownMember, FencedGeneration)
_READS = (TopicNotFound, PartitionNotFound, OffsetOutOfRange)
_DEAD_LETTERS = (TopicNotFound, InvalidTopicName, RecordTooLarge)  # a nack past maxDeliveries appends to the DLQ


@router.get("", response_model=list[GroupSummary], summary="List consumer groups (of every coordinator)",
            responses=error_responses(_COORDINATOR))
async def list_groups(groups: GroupsDep, forwarded: ForwardedDep, access: AccessDep) -> list[GroupSummary]:
    return [g for g in await groups.list_groups(forwarded=forwarded)
            if access.allowed(acls.group(g.name), Operation.DESCRIBE)]


@router.put("/{group}", response_model=GroupInfo, summary="Declare a group: create it or update its settings",
            responses=error_responses(_GROUP, InvalidConfig, TopicNotFound), dependencies=_on_group(Operation.ALTER))
async def declare_group(group: str, spec: GroupSpec, groups: GroupsDep, forwarded: ForwardedDep) -> GroupInfo:
    return await groups.declare(group, spec, forwarded=forwarded)


@router.get("/{group}", response_model=GroupInfo, summary="Describe a group: state, members, offsets and lag",
            responses=error_responses(_GROUP, _READS), dependencies=_on_group(Operation.DESCRIBE))
async def describe_group(group: str, groups: GroupsDep, forwarded: ForwardedDep) -> GroupInfo:
    return await groups.describe(group, forwarded=forwarded)


@router.delete("/{group}", status_code=204, summary="Delete a group and its offsets (409 with live members)",
               responses=error_responses(_GROUP, GroupHasMembers), dependencies=_on_group(Operation.DELETE))
async def delete_group(group: str, groups: GroupsDep, forwarded: ForwardedDep, force: Flag = False) -> Response:
    await groups.delete(group, force, forwarded=forwarded)
    return Response(status_code=204)


@router.post("/{group}/members", response_model=JoinResponse, summary="Join (or rejoin) an ordered group",
             responses=error_responses(_GROUP, _MEMBER, TopicNotFound), dependencies=_on_group(Operation.CONSUME))
async def join(group: str, body: JoinRequest, groups: GroupsDep, client_host: PeerHostDep,
               forwarded: ForwardedDep, access: AccessDep) -> JoinResponse:
    for name in body.topics:
        access.check(topic(name), Operation.CONSUME)
    return await groups.join(group, body, client_host, forwarded=forwarded)


@router.post("/{group}/members/{member}/heartbeat", response_model=HeartbeatResponse, summary="Heartbeat",
             responses=error_responses(_GROUP, _MEMBER), dependencies=_on_group(Operation.CONSUME))
async def heartbeat(group: str, member: str, body: HeartbeatRequest, groups: GroupsDep,
                    forwarded: ForwardedDep) -> HeartbeatResponse:
    return await groups.heartbeat(group, member, body.generation, forwarded=forwarded)


@router.delete("/{group}/members/{member}", status_code=204, summary="Leave the group (its partitions move)",
               responses=error_responses(_GROUP, _MEMBER), dependencies=_on_group(Operation.CONSUME))
async def leave(group: str, member: str, groups: GroupsDep, forwarded: ForwardedDep) -> Response:
    await groups.leave(group, member, forwarded=forwarded)
    return Response(status_code=204)


@router.post("/{group}/consume", response_model=ConsumeResponse, summary="Consume (long-poll with waitMs)",
             responses=error_responses(_GROUP, _MEMBER, _READS, InflightLimitReached, _DEAD_LETTERS),
             dependencies=_on_group(Operation.CONSUME))
async def consume(group: str, body: ConsumeRequest, groups: GroupsDep, client_host: PeerHostDep,
                  forwarded: ForwardedDep, access: AccessDep) -> Response:
    if body.topic is not None:  # an ordered member's topics were checked when it joined
        access.check(topic(body.topic), Operation.CONSUME)
    response = await groups.consume(group, body, client_host, forwarded=forwarded)
    return Response(response.model_dump_json(), media_type="application/json")


@router.post("/{group}/ack", response_model=AckResponse, summary="Shared mode: the messages are done",
             responses=error_responses(_GROUP, LeaseNotFound), dependencies=_on_group(Operation.CONSUME))
async def ack(group: str, body: AckRequest, groups: GroupsDep, forwarded: ForwardedDep) -> AckResponse:
    return await groups.ack(group, body, forwarded=forwarded)


@router.post("/{group}/nack", response_model=AckResponse,
             summary="Shared mode: redeliver after `delay` (dead letter after maxDeliveries)",
             responses=error_responses(_GROUP, LeaseNotFound, _READS, _DEAD_LETTERS),
             dependencies=_on_group(Operation.CONSUME))
async def nack(group: str, body: NackRequest, groups: GroupsDep, forwarded: ForwardedDep) -> AckResponse:
    return await groups.nack(group, body, forwarded=forwarded)


@router.post("/{group}/release", response_model=AckResponse,
             summary="Shared mode: give leases back unprocessed (not counted as a delivery)",
             responses=error_responses(_GROUP, LeaseNotFound), dependencies=_on_group(Operation.CONSUME))
async def release(group: str, body: AckRequest, groups: GroupsDep, forwarded: ForwardedDep) -> AckResponse:
    return await groups.release(group, body, forwarded=forwarded)


@router.post("/{group}/offsets", response_model=CommitResponse, summary="Ordered mode: commit offsets",
             responses=error_responses(_GROUP, _MEMBER, _READS, GroupHasMembers),
             dependencies=_on_group(Operation.CONSUME))
async def commit(group: str, body: CommitRequest, groups: GroupsDep, forwarded: ForwardedDep) -> CommitResponse:
    return await groups.commit(group, body, forwarded=forwarded)


@router.post("/{group}/offsets/reset", response_model=OffsetResetPlan,
             summary="Reset offsets (409 while members live unless force; dryRun returns the plan)",
             responses=error_responses(_GROUP, _READS, GroupHasMembers), dependencies=_on_group(Operation.RESET))
async def reset_offsets(group: str, body: OffsetResetRequest, groups: GroupsDep,
                        forwarded: ForwardedDep) -> OffsetResetPlan:
    return await groups.reset_offsets(group, body, forwarded=forwarded)


@router.post("/{group}/pause", response_model=PauseResponse, summary="Stop deliveries to this group",
             responses=error_responses(_GROUP), dependencies=_on_group(Operation.ALTER))
async def pause(group: str, groups: GroupsDep, forwarded: ForwardedDep) -> PauseResponse:
    return await groups.pause(group, forwarded=forwarded)


@router.post("/{group}/resume", response_model=PauseResponse, summary="Resume deliveries to this group",
             responses=error_responses(_GROUP), dependencies=_on_group(Operation.ALTER))
async def resume(group: str, groups: GroupsDep, forwarded: ForwardedDep) -> PauseResponse:
    return await groups.resume(group, forwarded=forwarded)
