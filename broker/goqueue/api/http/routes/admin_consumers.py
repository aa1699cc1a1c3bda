"""Operator controls for consumers: pause / resume all groups, the inflight list, metadata backup / restore."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from goqueue.api.http.deps import CoordinatorDep
from goqueue.consumers.backup import backup_metadata, restore_metadata
from goqueue.models import InflightList, MetadataBackup, PauseResponse, RestoreReport

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/consumers/pause", response_model=PauseResponse, summary="Emergency: pause every group")
async def pause_all(coordinator: CoordinatorDep) -> PauseResponse:
    return await coordinator.pause(None)


@router.post("/consumers/resume", response_model=PauseResponse,
             summary="Resume every group (also lifts per-group pauses)")
async def resume_all(coordinator: CoordinatorDep) -> PauseResponse:
    return await coordinator.resume(None)


@router.get("/inflight", response_model=InflightList, summary="Unacked messages: leased, or waiting for redelivery")
async def inflight(
    coordinator: CoordinatorDep,
    group: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> InflightList:
    return coordinator.inflight(group, limit)


@router.get("/metadata", response_model=MetadataBackup, summary="Backup: topics, settings, groups and offsets")
async def backup(coordinator: CoordinatorDep) -> MetadataBackup:
    return backup_metadata(coordinator)


@router.post("/metadata", response_model=RestoreReport, summary="Restore a metadata backup (additive)")
async def restore(body: MetadataBackup, coordinator: CoordinatorDep) -> RestoreReport:
    return await restore_metadata(coordinator, body)
