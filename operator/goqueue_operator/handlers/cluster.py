"""GoQueueCluster: observe → advance the procedures one step → build children → apply → compute status.

Runs on create, update and resume, and from a timer (`cluster_resync_s`) so drift of children heals and a roll,
resize or drain advances without any change to the resource. A per-object lock keeps the timer and the change
handlers from reconciling one cluster at once, and the CR is read fresh inside the lock, so each reconcile sees
the state-machine fields the previous one wrote.

Progress and stalls are status and Events, not handler failures: a failing reconcile loop retries the same
thing and tells nobody why. Only the Kubernetes API being unreachable is a (temporary) handler failure.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import kopf

from goqueue.client.auth import Credentials
from goqueue_operator import GROUP, VERSION
from goqueue_operator.adoption import Adoption, AdoptionKind, plan_adoption
from goqueue_operator.brokers import BrokerAdmin, BrokerUnreachable, broker_url
from goqueue_operator.context import OperatorContext, context_of
from goqueue_operator.handlers.fresh import reconcile_fresh
from goqueue_operator.kube import JSON, ObjectRef
from goqueue_operator.observed import ClusterObservation
from goqueue_operator.pki.identity import operator_identity
from goqueue_operator.pki.outcome import TlsOutcome
from goqueue_operator.pki.phase import tls_phase
from goqueue_operator.pki.reconcile import reconcile_tls
from goqueue_operator.pki.trust import broker_tls
from goqueue_operator.resize.execute import advance_resize
from goqueue_operator.resize.plan import resize_view_for
from goqueue_operator.resources import labels, ports
from goqueue_operator.resources.children import CREATE_ONLY_KINDS, OPTIONAL_APIS, build_cluster_children
from goqueue_operator.resources.names import child_name
from goqueue_operator.resources.tls import TlsPhase
from goqueue_operator.roller.execute import advance_roll
from goqueue_operator.roller.plan import RollFacts, roll_view_for
from goqueue_operator.scaling.execute import advance_scaling
from goqueue_operator.scaling.plan import scale_view_for
from goqueue_operator.settings import OperatorSettings
from goqueue_operator.status.cluster import ClusterOutcome, cluster_status
from goqueue_operator.status.conditions import Condition, transitions
from goqueue_operator.status.remedies import Subject, warning_message
from goqueue_operator.users.principal import operator_credentials
from goqueue_operator.views import ClusterView, SpecError

CLUSTER = (GROUP, VERSION, "goqueueclusters")
KIND = "GoQueueCluster"
EVENTFUL_CONDITIONS = frozenset({"Ready", "Degraded", "Paused"})  # the others get Events from their procedures
FAILURE_REASONS = frozenset({"AdoptionRefused"})  # Ready=False reasons that need the user (not creating/rolling)


def parse_cluster(body: Any, settings: OperatorSettings) -> ClusterView:
    try:
        return ClusterView.from_body(dict(body), image_repository=settings.image_repository,
                                     cluster_domain=settings.cluster_domain)
    except SpecError as exc:
        raise kopf.PermanentError(f"invalid GoQueueCluster: {exc}") from exc


async def reconcile_cluster(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    async def run(ctx: OperatorContext, fresh: JSON) -> None:
        await _reconcile(ctx, parse_cluster(fresh, ctx.settings))

    await reconcile_fresh(memo, KIND, body, run)


async def observe(ctx: OperatorContext, cluster: ClusterView) -> ClusterObservation:
    selector = labels.selector_string(cluster.name)
    statefulset = await ctx.kube.get("StatefulSet", cluster.namespace, child_name(cluster.name, "statefulset"))
    pods = await ctx.kube.list_objects("Pod", cluster.namespace, selector)
    claims = await ctx.kube.list_objects("PersistentVolumeClaim", cluster.namespace, selector)
    return ClusterObservation.of(statefulset, pods, claims)


def admin_for(ctx: OperatorContext, cluster: ClusterView, observation: ClusterObservation,
              tls: TlsOutcome, credentials: Credentials | None = None,
              identity: tuple[bytes, bytes] | None = None) -> BrokerAdmin | None:
    """The admin API of the lowest Ready broker (any broker answers for the cluster); None when none is Ready.
    Brokers are reached by pod IP, which works wherever the operator runs and needs no Service endpoints; over
    https, verified against the cluster's CA bundle, when the pod serves TLS; as the operator's own principal
    (`credentials`, users/principal.py)."""
    reachable = [p for p in observation.ready_pods if p.ip]
    if not reachable:
        return None
    verify = broker_tls(cluster, reachable[0], tls.trust, identity)
    return ctx.admin(broker_url(reachable[0].ip or "", ports.HTTP_PORT, tls=reachable[0].tls), verify, credentials)


async def _leader(admin: BrokerAdmin | None) -> tuple[int | None, str | None]:
    if admin is None:
        return None, "no Ready broker"
    try:
        return await admin.metadata_leader(), None
    except BrokerUnreachable as exc:
        return None, str(exc)


async def _reconcile(ctx: OperatorContext, cluster: ClusterView) -> None:
    about = ObjectRef(KIND, cluster.namespace, cluster.name, cluster.meta.uid)
    observation = await observe(ctx, cluster)
    now = datetime.now(UTC)
    if cluster.paused:
        await _write_status(ctx, cluster, about, observation, ClusterOutcome(), now)
        return
    adoption = plan_adoption(cluster.name, cluster.meta.uid, observation.statefulset)
    if adoption.kind is not AdoptionKind.NONE:
        await _adopt(ctx, cluster, about, observation, adoption, now)
        return
    # before the pods: they mount its Secret
    tls = await reconcile_tls(ctx.kube, cluster, about, now, brokers_serve_tls=any(p.tls for p in observation.pods))
    admin = admin_for(ctx, cluster, observation, tls,
                      await operator_credentials(ctx.kube, cluster.namespace, cluster.name),
                      await operator_identity(ctx.kube, cluster, observation.pods, now))
    try:
        leader, leader_error = await _leader(admin)
        resize_view = resize_view_for(cluster, observation)
        resize = await advance_resize(resize_view, kube=ctx.kube, cluster=about,
                                      statefulset=child_name(cluster.name, "statefulset"),
                                      previous_phase=cluster.record.storage.phase, metrics=ctx.metrics)
        scale = await advance_scaling(scale_view_for(cluster, observation, now), admin=admin, kube=ctx.kube,
                                      cluster=about, metrics=ctx.metrics)
        children = build_cluster_children(cluster, password=secrets.token_urlsafe(32),
                                          operator_password=secrets.token_urlsafe(32), replicas=scale.step.replicas,
                                          claim_size=str(resize.record["size"]),
                                          tls=tls_phase(TlsPhase.of(cluster), observation.pods,
                                                        certificate_ready=tls.condition.status is True))
        if resize.skip_statefulset:
            children = [c for c in children if c["kind"] != "StatefulSet"]
        applied = await ctx.kube.apply_all(children, about, create_only_kinds=CREATE_ONLY_KINDS,
                                           optional_apis=OPTIONAL_APIS)
        statefulset = next((a.body for a in applied if a.kind == "StatefulSet"), None)
        view = roll_view_for(cluster, observation, statefulset, now)
        facts = RollFacts().with_leader(leader, leader_error) if len(observation.pods) > 1 else RollFacts()
        roll = await advance_roll(view, admin=admin, kube=ctx.kube, cluster=about, metrics=ctx.metrics,
                                  facts=facts)
    finally:
        if admin is not None:
            admin.close()
    ctx.metrics.set_blocked(cluster.meta.uid, roll.step.kind.value == "Blocked")
    outcome = ClusterOutcome(roll=roll.step, roll_record=roll.record, resize=resize.step,
                             storage_record=resize.record, scale=scale.step, scaling_record=scale.record,
                             leader=leader, tls=tls)
    await _write_status(ctx, cluster, about, observation, outcome, now)


async def _adopt(ctx: OperatorContext, cluster: ClusterView, about: ObjectRef, observation: ClusterObservation,
                 adoption: Adoption, now: datetime) -> None:
    """A StatefulSet of this name that is not ours: take it over (orphan-delete; the next reconcile creates ours
    around its running pods) or leave it alone and say why (`adoption.py`)."""
    if adoption.kind is AdoptionKind.ADOPT and observation.statefulset is not None:
        uid = observation.statefulset["metadata"]["uid"]
        await ctx.kube.delete("StatefulSet", cluster.namespace, child_name(cluster.name, "statefulset"), uid=uid,
                              propagation="Orphan")
        await ctx.kube.emit_event(about, "AdoptingStatefulSet", adoption.message)
    await _write_status(ctx, cluster, about, observation, ClusterOutcome(adoption=adoption), now)
    if adoption.kind is AdoptionKind.ADOPT:
        raise kopf.TemporaryError("StatefulSet orphaned for adoption", delay=1)  # create ours at once


async def _write_status(ctx: OperatorContext, cluster: ClusterView, about: ObjectRef,
                        observation: ClusterObservation, outcome: ClusterOutcome, now: datetime) -> None:
    status = cluster_status(cluster, observation, outcome, now=now)
    await ctx.kube.patch_status(KIND, cluster.namespace, cluster.name, status)
    conditions = [Condition(c["type"], {"True": True, "False": False}.get(c["status"]), c["reason"], c["message"])
                  for c in status["conditions"]]
    for changed in transitions(conditions, cluster.record.conditions):
        failed = changed.status is False and changed.reason in FAILURE_REASONS
        if (changed.type == "Degraded" and changed.status) or (changed.type == "Ready" and failed):
            # Ready=False while creating or rolling is expected, not a Warning; Degraded is the unexplained failure
            await ctx.kube.emit_event(about, changed.reason, warning_message(
                Subject(KIND, cluster.namespace, cluster.name), changed), warning=True)
        elif changed.type in EVENTFUL_CONDITIONS:
            await ctx.kube.emit_event(about, f"{changed.type}{changed.status_text}", changed.message or changed.reason)


async def forget_cluster(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Drop the per-object lock and the progress gauges of a deleted cluster (children go with it: owner
    references); a cluster deleted mid-roll must not stay counted as rolling."""
    context = context_of(memo)
    context.locks.forget(body["metadata"]["uid"])
    context.metrics.forget(body["metadata"]["uid"])


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*CLUSTER, id="reconcile", registry=registry)(reconcile_cluster)
    kopf.timer(*CLUSTER, id="resync", interval=settings.cluster_resync_s, initial_delay=settings.cluster_resync_s,
               registry=registry)(reconcile_cluster)
    kopf.on.delete(*CLUSTER, id="forget", optional=True, registry=registry)(forget_cluster)
