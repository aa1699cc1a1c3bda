"""Storage expansion planner: grow every claim, then make the StatefulSet's claim template match. Pure.

A StatefulSet's volumeClaimTemplates cannot change, so raising spec.storage.size (RabbitMQ's cluster-operator
does the same) goes:

1. the StorageClass must allow volume expansion, else nothing changes (condition Resizing=False with reason
   StorageClassNotExpandable, and a Warning Event);
2. every claim of the cluster (also those of brokers scaled away, which a scale-up would reuse) is patched to
   the new size; a claim that is already as large or larger is left alone;
3. the StatefulSet is deleted with `propagationPolicy: Orphan` (its pods keep running) and, once gone, applied
   again with the new claim template; it adopts the running pods (same template: same revision, no restart);
4. the volumes grow (the storage driver); a claim reporting FileSystemResizePending needs its pod restarted,
   which the roller does, one at a time and health-gated like any restart.

Every step is decided from what is observed (claims, StatefulSet), not remembered, and each is idempotent: an
operator killed at any point re-plans the same step or the next one. status.storage shows the phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from goqueue_operator.observed import ClaimFacts, ClusterObservation
from goqueue_operator.quantity import at_least
from goqueue_operator.views import ClusterView


class ResizeKind(StrEnum):
    IDLE = "Idle"
    NEED_CLASS = "NeedStorageClass"            # fact: does the StorageClass allow expansion?
    REFUSED = "Refused"                        # it does not: nothing is changed
    PATCH_CLAIMS = "PatchingClaims"            # action: raise the claims' requests
    RECREATE = "RecreatingStatefulSet"         # action: delete the StatefulSet, orphaning its pods
    AWAIT_DELETION = "AwaitingStatefulSetDeletion"  # the orphaning deletion is in progress
    EXPANDING = "ExpandingVolumes"             # the storage driver grows the volumes
    RESTARTING = "RestartingPods"              # claims wait for a pod restart (the roller's job)

    @property
    def resizing(self) -> bool:
        return self not in (ResizeKind.IDLE, ResizeKind.REFUSED, ResizeKind.NEED_CLASS)


@dataclass(frozen=True)
class ResizeView:
    target: str
    statefulset_present: bool
    statefulset_deleting: bool
    template_size: str | None
    claims: tuple[ClaimFacts, ...]
    storage_class: str | None
    expandable: bool | None = None  # None: not asked yet
    class_problem: str = ""


@dataclass(frozen=True)
class ResizeStep:
    kind: ResizeKind
    claims: tuple[str, ...] = ()
    message: str = ""


def resize_view_for(cluster: ClusterView, observation: ClusterObservation) -> ResizeView:
    classes = {c.storage_class for c in observation.claims if c.storage_class}
    return ResizeView(
        target=cluster.spec.storage.size,
        statefulset_present=observation.statefulset is not None,
        statefulset_deleting=observation.statefulset_deleting,
        template_size=observation.claim_template_size,
        claims=observation.claims,
        storage_class=cluster.spec.storage.storage_class_name or (sorted(classes)[0] if classes else None),
    )


def next_resize_step(view: ResizeView) -> ResizeStep:
    if view.statefulset_deleting:
        return ResizeStep(ResizeKind.AWAIT_DELETION, message="waiting for the StatefulSet to be deleted (its pods "
                          "keep running) before it is re-created with the new claim size")
    small = tuple(c.name for c in view.claims if not at_least(c.requested, view.target))
    template_small = view.statefulset_present and not at_least(view.template_size, view.target)
    if small or template_small:
        if view.expandable is None:
            return ResizeStep(ResizeKind.NEED_CLASS)
        if not view.expandable:
            return ResizeStep(ResizeKind.REFUSED, message=f"cannot grow claims to {view.target}: "
                              f"{view.class_problem}; nothing was changed")
    if small:
        return ResizeStep(ResizeKind.PATCH_CLAIMS, small, f"raising {len(small)} claim(s) to {view.target}")
    if template_small:
        return ResizeStep(ResizeKind.RECREATE, message=f"re-creating the StatefulSet with claim template size "
                          f"{view.target} (pods keep running)")
    growing = [c.name for c in view.claims if not c.resize_pending and not at_least(c.capacity, view.target)]
    if growing:
        return ResizeStep(ResizeKind.EXPANDING, tuple(growing),
                          f"{len(view.claims) - len(growing)}/{len(view.claims)} claims at {view.target}")
    pending = tuple(c.name for c in view.claims if c.resize_pending)
    if pending:
        return ResizeStep(ResizeKind.RESTARTING, pending,
                          f"{len(pending)} claim(s) wait for their broker's restart to grow the filesystem")
    return ResizeStep(ResizeKind.IDLE)


def claim_size_to_apply(view: ResizeView) -> str:
    """The StatefulSet keeps its claim template size while it exists (immutable); a new one gets the target."""
    if view.statefulset_present and view.template_size:
        return view.template_size
    return view.target


def storage_record(view: ResizeView, step: ResizeStep) -> dict[str, object]:
    """status.storage after `step`."""
    return {"size": claim_size_to_apply(view), "targetSize": view.target, "phase": step.kind.value,
            "message": step.message or None}
