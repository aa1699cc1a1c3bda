"""Operator-facing read-outs: storage statistics (`goqueue-admin storage stats`)."""

from __future__ import annotations

from fastapi import APIRouter

from goqueue.api.http.auth import AUTH_ERRORS, CLUSTER_ADMIN
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import error_responses
from goqueue.errors import NotReady
from goqueue.models import StorageStats

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=AUTH_ERRORS, dependencies=[CLUSTER_ADMIN])


@router.get("/storage", response_model=StorageStats, summary="Disk usage of the volume, topics and partitions",
            responses=error_responses(NotReady))
async def storage_stats(broker: BrokerDep) -> StorageStats:
    broker.check_ready()
    return broker.storage_stats()
