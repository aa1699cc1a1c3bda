"""The operator's own Prometheus metrics and the server for /metrics and /healthz (the liveness probe).

Labels are bounded: kind (three values), result, error (an exception class or a condition reason), step (the
roller's step kinds), procedure (roll, resize, scale). Never a cluster or topic name: those are unbounded, and status
already names them. Per-cluster progress is kept here by cluster uid and exported summed over clusters (as
`rollouts_blocked` always was): "how many clusters roll, and how many brokers are left" is the operator's view; which
cluster it is, `kubectl get goqueue -A` says.

/healthz is served from the operator's event loop: when the loop is stuck, the probe times out and the kubelet
restarts the operator, which is what a liveness probe is for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

PROCEDURES = ("roll", "resize", "scale")
# Label values exported as 0 from the start. A labelled counter otherwise appears with its first increment, and
# increase() over a series that is born at 1 misses that first one (a roll of three restarts would read two).
KINDS = ("GoQueueCluster", "GoQueueTopic", "GoQueueConsumerGroup")
RESULTS = ("ok", "error")
ROLL_STEPS = ("TransferringLeadership", "Restarting", "CaughtUp", "Blocked")  # roller.plan.StepKind values counted
PROCEDURE_STEPS = {"resize": ("PatchingClaims", "RecreatingStatefulSet"),
                   "scale": ("ScalingUp", "ScalingDown", "Stopped", "Draining", "Rebalancing")}


@dataclass(frozen=True)
class Progress:
    """One cluster's state in one procedure, as its executor last saw it (`progress.py` computes it)."""

    active: bool           # the procedure is under way (Progressing)
    blocked: bool = False  # it cannot proceed without help (RollBlocked, a refused resize or scale-down, a stall)
    pending: int = 0       # work left, in the procedure's unit: brokers to restart, claims to grow, brokers to go


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes: the dashboard's
        # CPU and memory, wherever the operator runs (the kubelet's container metrics need cAdvisor)
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
        self.procedures_in_progress = Gauge(
            "goqueue_operator_procedures_in_progress", "Clusters with the procedure (roll, resize, scale) under way.",
            ["procedure"], registry=r)
        self.procedures_blocked = Gauge(
            "goqueue_operator_procedures_blocked", "Clusters whose procedure cannot proceed without help: a blocked "
            "roll, a refused resize, a refused or stalled scale-down.", ["procedure"], registry=r)
        self.procedure_steps = Counter(
            "goqueue_operator_procedure_steps", "Actions of the resize and scale executors, by step (claims patched, "
            "StatefulSet re-created, brokers drained, rebalance asked, replicas changed).", ["procedure", "step"],
            registry=r)
        self.pending = {
            "roll": Gauge("goqueue_operator_roll_brokers_pending", "Brokers waiting for a restart in a roll, summed "
                          "over clusters.", registry=r),
            "resize": Gauge("goqueue_operator_resize_claims_pending", "Claims not yet grown to spec.storage.size "
                            "(filesystem included), summed over clusters.", registry=r),
            "scale": Gauge("goqueue_operator_scale_brokers_pending", "Brokers still to add or remove in a scaling, "
                           "|spec.replicas - broker pods|, summed over clusters.", registry=r),
        }
        self._progress: dict[str, dict[str, Progress]] = {procedure: {} for procedure in PROCEDURES}
        for procedure in PROCEDURES:  # zero, not absent, before the first cluster: a flat line on the dashboard
            self.procedures_in_progress.labels(procedure).set(0)
            self.procedures_blocked.labels(procedure).set(0)
        for kind in KINDS:
            self.reconcile_seconds.labels(kind)
            for result in RESULTS:
                self.reconciles.labels(kind, result)
        for step in ROLL_STEPS:
            self.rollout_steps.labels(step)
        for procedure, steps in PROCEDURE_STEPS.items():
            for step in steps:
                self.procedure_steps.labels(procedure, step)

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

    def report(self, procedure: str, cluster_uid: str, progress: Progress) -> None:
        """Record a cluster's progress in a procedure; the gauges are the sums over the clusters."""
        clusters = self._progress[procedure]
        if progress.active or progress.blocked or progress.pending:
            clusters[cluster_uid] = progress
        else:
            clusters.pop(cluster_uid, None)
        self.procedures_in_progress.labels(procedure).set(sum(p.active for p in clusters.values()))
        self.procedures_blocked.labels(procedure).set(sum(p.blocked for p in clusters.values()))
        self.pending[procedure].set(sum(p.pending for p in clusters.values()))

    def forget(self, cluster_uid: str) -> None:
        """A deleted cluster no longer counts anywhere."""
        for procedure in PROCEDURES:
            self.report(procedure, cluster_uid, Progress(active=False))
        self.set_blocked(cluster_uid, False)

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
