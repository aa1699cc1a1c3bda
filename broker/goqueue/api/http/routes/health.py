"""Liveness, readiness and Prometheus metrics on the HTTP port (the probes and the scrape target)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from goqueue import __version__
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import error_responses
from goqueue.models import HealthStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves HTTP", responses=error_responses())
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


_READINESS = {"type": "object", "required": ["status", "offlinePartitions"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not ready"]}, "offlinePartitions": {"type": "integer"}}}


@router.get("/readyz", summary="Readiness: storage recovered and accepting writes", responses={
    **error_responses(),
    200: {"description": "Ready", "content": {"application/json": {"schema": _READINESS}}},
    503: {"description": "Not ready (a probe answer, not an error)", "content": {
        "application/json": {"schema": _READINESS}}}})
async def readyz(broker: BrokerDep, request: Request) -> JSONResponse:
    groups = request.app.state.groups
    ready = broker.ready and (groups is None or groups.coordinator.ready)
    body = {"status": "ready" if ready else "not ready", "offlinePartitions": len(broker.replicas.offline)}
    return JSONResponse(status_code=200 if ready else 503, content=body)


@router.get("/metrics", summary="Prometheus metrics", responses={
    **error_responses(), 200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
async def metrics(broker: BrokerDep) -> Response:
    return Response(generate_latest(broker.metrics.registry), media_type=CONTENT_TYPE_LATEST)


_VERSION = {"type": "object", "required": ["version", "brokerId"], "properties": {
    "version": {"type": "string", "description": "The broker's release, e.g. 0.1.0."},
    "brokerId": {"type": "integer"}}}


@router.get("/v1/version", summary="The broker's version (also goqueue_build_info in /metrics)", responses={
    **error_responses(), 200: {"description": "Version", "content": {"application/json": {"schema": _VERSION}}}})
async def version(broker: BrokerDep) -> dict[str, object]:
    return {"version": __version__, "brokerId": broker.broker_id}


@router.get("/v1/admin/health", response_model=HealthStatus, summary="Health with per-check detail",
            responses=error_responses())
async def health(broker: BrokerDep) -> HealthStatus:
    checks = {
        "storage": "ok" if broker.ready else "recovering",
        "partitions": f"{len(broker.replicas.partitions)} online, {len(broker.replicas.offline)} offline",
    }
    healthy = broker.ready and not broker.replicas.offline
    return HealthStatus(status="healthy" if healthy else ("degraded" if broker.ready else "starting"),
                        broker_id=broker.broker_id, version=__version__,
                        uptime_s=round(time.monotonic() - broker.started_monotonic, 3), checks=checks)
