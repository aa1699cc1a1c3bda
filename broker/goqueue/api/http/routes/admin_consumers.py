"""Operator controls for consumers: pause / resume all groups, the inflight list, metadata backup / restore.

Each gathers from (or acts on) every coordinator through `GroupRouter`; a request forwarded by another broker
answers for this broker's groups only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from goqueue.api.http.deps import GroupsDep
from goqueue.consumers.backup import restore_metadata
from goqueue.models import InflightList, MetadataBackup, PauseResponse, RestoreReport

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/consumers/pause", response_model=PauseResponse, summary="Emergency: pause every group")
async def pause_all(groups: GroupsDep) -> PauseResponse:
    return await groups.set_all_paused(True)


@router.post("/consumers/resume", response_model=PauseResponse,
             summary="Resume every group (also lifts per-group pauses)")
async def resume_all(groups: GroupsDep) -> PauseResponse:
    return await groups.set_all_paused(False)


@router.get("/inflight", response_model=InflightList, summary="Unacked messages: leased, or waiting for redelivery")
async def inflight(
    groups: GroupsDep,
    group: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> InflightList:
    return await groups.inflight(group, limit)


@router.get("/metadata", response_model=MetadataBackup, summary="Backup: topics, settings, groups and offsets")
async def backup(groups: GroupsDep) -> MetadataBackup:
    return await groups.backup()


@router.post("/metadata", response_model=RestoreReport, summary="Restore a metadata backup (additive)")
async def restore(body: MetadataBackup, groups: GroupsDep) -> RestoreReport:
    return await restore_metadata(groups, body)
