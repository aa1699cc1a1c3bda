"""Operator controls for consumers: pause / resume all groups, the inflight list, metadata backup / restore.

Each gathers from (or acts on) every coordinator through `GroupRouter`; a request forwarded by another broker
(`ForwardedDep`) answers for this broker's groups only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from goqueue import limits
from goqueue.api.http.auth import AUTH_ERRORS, CLUSTER_ADMIN
from goqueue.api.http.body import CheckedBodyRoute
from goqueue.api.http.deps import ForwardedDep, GroupsDep
from goqueue.api.http.errors import METADATA_CHANGE, error_responses
from goqueue.consumers.restore import restore_metadata
from goqueue.errors import (
    DiskFull,
    GoQueueError,
    GroupNotFound,
    InvalidConfig,
    InvalidTopicName,
    NotCoordinator,
    NotEnoughReplicas,
    NotLeader,
    NotReady,
    Overloaded,
    PartitionOffline,
    StorageError,
    Timeout,
    TopicNotFound,
    Unavailable,
)
from goqueue.models import InflightList, MetadataBackup, PauseResponse, RestoreReport, within

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=CheckedBodyRoute, responses=AUTH_ERRORS,
                   dependencies=[CLUSTER_ADMIN])  # admin on the cluster (security.acls)

# Gathered from, or applied on, every coordinator (each may be moving) and the cluster metadata.
_EVERY_COORDINATOR: tuple[type[GoQueueError], ...] = (
    NotReady, NotCoordinator, NotLeader, Timeout, Unavailable, Overloaded, NotEnoughReplicas,
                      PartitionOffline, DiskFull, StorageError, *METADATA_CHANGE)


@router.post("/consumers/pause", response_model=PauseResponse, summary="Emergency: pause every group",
             responses=error_responses(_EVERY_COORDINATOR))
async def pause_all(groups: GroupsDep, forwarded: ForwardedDep) -> PauseResponse:
    return await groups.set_all_paused(True, forwarded=forwarded)


@router.post("/consumers/resume", response_model=PauseResponse,
             summary="Resume every group (also lifts per-group pauses)",
             responses=error_responses(_EVERY_COORDINATOR))
async def resume_all(groups: GroupsDep, forwarded: ForwardedDep) -> PauseResponse:
    return await groups.set_all_paused(False, forwarded=forwarded)


@router.get("/inflight", response_model=InflightList, summary="Unacked messages: leased, or waiting for redelivery",
            responses=error_responses(GroupNotFound, _EVERY_COORDINATOR))
async def inflight(
    groups: GroupsDep,
    forwarded: ForwardedDep,
    group: str | None = None,
    limit: Annotated[int, Query(**within(limits.INFLIGHT_LIST))] = 1000,
) -> InflightList:
    return await groups.inflight(group, limit, forwarded=forwarded)


@router.get("/metadata", response_model=MetadataBackup, summary="Backup: topics, settings, groups and offsets",
            responses=error_responses(_EVERY_COORDINATOR))
async def backup(groups: GroupsDep, forwarded: ForwardedDep) -> MetadataBackup:
    return await groups.backup(forwarded=forwarded)


@router.post("/metadata", response_model=RestoreReport, summary="Restore a metadata backup (additive)",
             responses=error_responses(_EVERY_COORDINATOR, InvalidConfig, InvalidTopicName, TopicNotFound))
async def restore(body: MetadataBackup, groups: GroupsDep, forwarded: ForwardedDep) -> RestoreReport:
    return await restore_metadata(groups, body, forwarded=forwarded)
