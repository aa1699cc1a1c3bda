"""The operator's own Prometheus metrics and the server for /metrics and /healthz (the liveness probe).

Labels are bounded: kind (three values), result, error (an exception class or a condition reason), step (the
roller's step kinds). Never a cluster or topic name: those are unbounded, and status already names them.

/healthz is served from the operator's event loop: when the loop is stuck, the probe times out and the kubelet
restarts the operator, which is what a liveness probe is for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.reconciles = Counter("goqueue_operator_reconciles", "Reconciles by kind and result (ok, retry, error).",
                                  ["kind", "result"], registry=r)
        self.reconcile_seconds = Histogram("goqueue_operator_reconcile_duration_seconds", "Reconcile duration.",
                                           ["kind"], registry=r,
                                           buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.errors = Counter("goqueue_operator_reconcile_errors", "Failed reconciles by kind and error.",
                              ["kind", "error"], registry=r)
        self.rollout_steps = Counter("goqueue_operator_rollout_steps", "Roller steps taken, by step.", ["step"],
                                     registry=r)
        self.rollouts_blocked = Gauge("goqueue_operator_rollouts_blocked", "Clusters whose roll is blocked now.",
                                      registry=r)
        self._blocked: set[str] = set()

    @contextmanager
    def reconcile(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self.reconciles.labels(kind, "error").inc()
            self.errors.labels(kind, type(exc).__name__).inc()
            raise
        else:
            self.reconciles.labels(kind, "ok").inc()
        finally:
            self.reconcile_seconds.labels(kind).observe(time.perf_counter() - started)

    def set_blocked(self, cluster_uid: str, blocked: bool) -> None:
        (self._blocked.add if blocked else self._blocked.discard)(cluster_uid)
        self.rollouts_blocked.set(len(self._blocked))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def start_server(metrics: OperatorMetrics, host: str, port: int) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def exposition(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", exposition)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
