"""Storage expansion executor: ask for the StorageClass when needed, then perform one step. Straight-line."""

from __future__ import annotations

from dataclasses import dataclass, replace

from goqueue_operator.kube import Kube, ObjectRef
from goqueue_operator.metrics import OperatorMetrics
from goqueue_operator.progress import resize_progress
from goqueue_operator.resize.plan import ResizeKind, ResizeStep, ResizeView, next_resize_step, storage_record


@dataclass(frozen=True)
class ResizeOutcome:
    step: ResizeStep
    record: dict[str, object]  # status.storage
    skip_statefulset: bool     # do not apply the StatefulSet this reconcile (being deleted for re-creation)


async def _with_class(view: ResizeView, kube: Kube) -> ResizeView:
    if not view.storage_class:
        return replace(view, expandable=False, class_problem="the claims have no StorageClass")
    storage_class = await kube.get("StorageClass", "", view.storage_class)
    if storage_class is None:
        return replace(view, expandable=False, class_problem=f"StorageClass {view.storage_class} does not exist")
    if not storage_class.get("allowVolumeExpansion"):
        return replace(view, expandable=False, class_problem=f"StorageClass {view.storage_class} does not allow "
                       "volume expansion (allowVolumeExpansion is not true)")
    return replace(view, expandable=True)


async def advance_resize(view: ResizeView, *, kube: Kube, cluster: ObjectRef, statefulset: str,
                         previous_phase: str | None, metrics: OperatorMetrics | None = None) -> ResizeOutcome:
    step = next_resize_step(view)
    if step.kind is ResizeKind.NEED_CLASS:
        view = await _with_class(view, kube)
        step = next_resize_step(view)
    if step.kind is ResizeKind.PATCH_CLAIMS:
        for claim in step.claims:
            await kube.patch("PersistentVolumeClaim", cluster.namespace, claim,
                             {"spec": {"resources": {"requests": {"storage": view.target}}}})
        await kube.emit_event(cluster, "ResizingClaims", f"{step.message}: {', '.join(step.claims)}")
    elif step.kind is ResizeKind.RECREATE:
        await kube.delete("StatefulSet", cluster.namespace, statefulset, propagation="Orphan")
        await kube.emit_event(cluster, "RecreatingStatefulSet", step.message)
    elif step.kind is ResizeKind.REFUSED and previous_phase != ResizeKind.REFUSED.value:
        await kube.emit_event(cluster, "StorageClassNotExpandable", step.message, warning=True)
    elif step.kind is ResizeKind.IDLE and previous_phase not in (None, ResizeKind.IDLE.value,
                                                                 ResizeKind.REFUSED.value):
        await kube.emit_event(cluster, "Resized", f"every claim is at {view.target}")
    if metrics is not None:
        if step.kind in (ResizeKind.PATCH_CLAIMS, ResizeKind.RECREATE):
            metrics.procedure_steps.labels("resize", step.kind.value).inc()
        metrics.report("resize", cluster.uid, resize_progress(view, step))
    skip = step.kind in (ResizeKind.RECREATE, ResizeKind.AWAIT_DELETION)
    return ResizeOutcome(step, storage_record(view, step), skip)
