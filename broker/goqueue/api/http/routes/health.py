"""Liveness, readiness and Prometheus metrics on the HTTP port (the probes and the scrape target)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from goqueue import __version__
from goqueue.api.http.auth import AUTH_ERRORS, AUTHENTICATED
from goqueue.api.http.deps import BrokerDep
from goqueue.api.http.errors import error_responses
from goqueue.models import BrokerVersion, HealthStatus, Liveness, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Liveness, summary="Liveness: the process serves HTTP",
            responses=error_responses())
async def healthz() -> Liveness:
    return Liveness()


@router.get("/readyz", summary="Readiness: storage recovered and accepting writes", responses={
    **error_responses(), 200: {"model": Readiness, "description": "Ready"},
    503: {"model": Readiness, "description": "Not ready (a probe answer, not an error)"}})
async def readyz(broker: BrokerDep, request: Request) -> JSONResponse:
    groups = request.app.state.groups
    ready = broker.ready and (groups is None or groups.coordinator.ready)
    body = Readiness(status="ready" if ready else "not ready", offline_partitions=len(broker.replicas.offline))
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump(mode="json"))


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={
    **error_responses(), 200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}})
async def metrics(broker: BrokerDep) -> Response:
    return Response(generate_latest(broker.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/version", response_model=BrokerVersion,
            summary="The broker's version (also goqueue_build_info in /metrics)", responses=error_responses())
async def version(broker: BrokerDep) -> BrokerVersion:
    return BrokerVersion(version=__version__, broker_id=broker.broker_id)


@router.get("/v1/admin/health", response_model=HealthStatus, summary="Health with per-check detail",
            responses={**error_responses(), **AUTH_ERRORS}, dependencies=[AUTHENTICATED])
async def health(broker: BrokerDep) -> HealthStatus:
    checks = {
        "storage": "ok" if broker.ready else "recovering",
        "partitions": f"{len(broker.replicas.partitions)} online, {len(broker.replicas.offline)} offline",
    }
    healthy = broker.ready and not broker.replicas.offline
    return HealthStatus(status="healthy" if healthy else ("degraded" if broker.ready else "starting"),
                        broker_id=broker.broker_id, version=__version__,
                        uptime_s=round(time.monotonic() - broker.started_monotonic, 3), checks=checks)
