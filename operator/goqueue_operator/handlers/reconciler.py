"""The skeleton GoQueueTopic and GoQueueConsumerGroup share (as rabbitmq/messaging-topology-operator does):
finalizer, conflict detection, broker lookup, status, Events, error translation. Each kind supplies
`declare(view, client, session)` and `delete(view, client)`.

Reconcile (create, update, resume, and a drift timer every `drift_interval_s`):
  parse → another, older resource names the same broker object? Conflict, do nothing → find a Ready broker of
  the referenced cluster → declare (create / repair) → status and one Event per action.

Deletion never wedges a namespace. The finalizer is released without touching any broker when: the
`goqueue.io/release-finalizer: "true"` annotation is set; deletionPolicy is Retain; the namespace or the
cluster is being deleted (the data goes with the cluster's claims' fate, not the topic's); another live resource
declares the same broker object; or the brokers stay unreachable for `finalizer_timeout_s` after the deletion
(with a Warning Event saying what was left behind).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import kopf

from goqueue.client.auth import Credentials
from goqueue.client.http import GoQueueClient
from goqueue.errors import GoQueueError, InvalidRequest, NotFound
from goqueue_operator.brokers import BrokerTls, broker_url
from goqueue_operator.context import OperatorContext, context_of
from goqueue_operator.handlers.fresh import reconcile_fresh
from goqueue_operator.kube import KubeError, NamespaceTerminating, ObjectRef
from goqueue_operator.observed import PodFacts
from goqueue_operator.pki.identity import operator_identity
from goqueue_operator.pki.trust import broker_tls, read_trust
from goqueue_operator.resources import labels, ports
from goqueue_operator.status.conditions import Condition, render_conditions, timestamp, transitions
from goqueue_operator.status.remedies import Subject, is_failure, warning_message
from goqueue_operator.users.principal import operator_credentials
from goqueue_operator.views import ClusterView, ObjectMeta, SpecError

JSON = dict[str, Any]


class DeclaredView(Protocol):
    @property
    def meta(self) -> ObjectMeta: ...

    @property
    def broker_name(self) -> str: ...

    @property
    def cluster_name(self) -> str: ...

    @property
    def deletion_policy(self) -> str: ...


V = TypeVar("V", bound=DeclaredView)


@dataclass
class Declared:
    """What `declare` found and did."""

    ready: Condition
    status: JSON
    actions: list[tuple[str, str, bool]] = field(default_factory=list)  # (reason, message, warning) → Events
    conditions: list[Condition] = field(default_factory=list)


@dataclass(frozen=True)
class Session:
    """What `declare` may use besides the broker client."""

    now: datetime
    spec_changed: bool  # the spec changed since the last reconcile (else a difference is drift)
    persist: Callable[[JSON], Awaitable[None]]  # write a status fragment now (two-phase procedures)


def previous_conditions(body: JSON) -> list[JSON]:
    """The conditions a resource's status holds now (to keep their transition times and warn once per change)."""
    conditions: list[JSON] = (body.get("status") or {}).get("conditions") or []
    return conditions


class ResourceKind(Protocol, Generic[V]):
    kind: str

    def parse(self, body: JSON) -> V: ...

    async def declare(self, view: V, client: GoQueueClient, session: Session) -> Declared: ...

    async def delete(self, view: V, client: GoQueueClient) -> tuple[str, str]:
        """Delete the broker object (or decide not to); (Event reason, message)."""
        ...


@dataclass(frozen=True)
class BrokerTarget:
    url: str | None
    reason: str = ""
    message: str = ""
    cluster_gone: bool = False
    tls: BrokerTls | None = None  # how to verify the broker (https), None for plaintext
    credentials: Credentials | None = None  # the operator's own principal there (users/principal.py)


async def find_broker(ctx: OperatorContext, namespace: str, cluster_name: str) -> BrokerTarget:
    cluster = await ctx.kube.get("GoQueueCluster", namespace, cluster_name)
    if cluster is None:
        return BrokerTarget(None, "ClusterNotFound", f"GoQueueCluster {cluster_name} does not exist", True)
    if cluster["metadata"].get("deletionTimestamp"):
        return BrokerTarget(None, "ClusterDeleting", f"GoQueueCluster {cluster_name} is being deleted", True)
    pods = await ctx.kube.list_objects("Pod", namespace, labels.selector_string(cluster_name))
    ready = sorted((f for f in (PodFacts.of(p) for p in pods) if f and f.ready and f.ip), key=lambda f: f.ordinal)
    if not ready:
        return BrokerTarget(None, "ClusterNotReady", f"GoQueueCluster {cluster_name} has no Ready broker")
    try:
        view = ClusterView.from_body(cluster, cluster_domain=ctx.settings.cluster_domain)
    except SpecError as exc:
        return BrokerTarget(None, "ClusterInvalid", f"GoQueueCluster {cluster_name} does not parse: {exc}")
    verify = broker_tls(view, ready[0], await read_trust(ctx.kube, view),
                        await operator_identity(ctx.kube, view, ready, datetime.now(UTC))) if ready[0].tls else None
    return BrokerTarget(broker_url(ready[0].ip or "", ports.HTTP_PORT, tls=ready[0].tls), tls=verify,
                        credentials=await operator_credentials(ctx.kube, namespace, cluster_name))


@dataclass(frozen=True)
class Declaration:
    """One resource's claim on a broker object, as kopf's index keeps it (no API call per reconcile)."""

    created: str
    name: str
    uid: str
    deleting: bool


IndexKey = tuple[str, str, str]  # (namespace, cluster, broker object name)


def index_key(view: DeclaredView) -> IndexKey:
    return (view.meta.namespace, view.cluster_name, view.broker_name)


def index_entry(kind: ResourceKind[V], body: JSON) -> dict[IndexKey, Declaration]:
    """What a resource contributes to its kind's index (nothing when it does not parse)."""
    try:
        view = kind.parse(body)
    except SpecError:
        return {}
    return {index_key(view): Declaration(view.meta.creation_timestamp, view.meta.name, view.meta.uid,
                                         bool(view.meta.deletion_timestamp))}


def find_conflict(view: DeclaredView, declarations: Iterable[Declaration], *, older_only: bool = True) -> str | None:
    """The name of an older live resource declaring the same broker object, if any (the newer one yields);
    with `older_only=False`, of any other live one (a deletion must not delete what another still declares)."""
    mine = (view.meta.creation_timestamp, view.meta.name)
    for other in sorted(declarations, key=lambda d: (d.created, d.name)):
        if other.uid == view.meta.uid or other.deleting:
            continue
        if not older_only or (other.created, other.name) < mine:
            return other.name
    return None


def translate(exc: GoQueueError) -> tuple[Condition, bool]:
    """A broker error as the Ready condition, and whether retrying soon can help (the one error mapping)."""
    if isinstance(exc, InvalidRequest):
        return Condition("Ready", False, "RejectedByBroker", f"{exc.code}: {exc.message}", warning=True), False
    if type(exc) is NotFound:
        return Condition("Ready", False, "BrokerApiMissing", exc.message, warning=True), False
    return Condition("Ready", False, "BrokerError", f"{exc.code}: {exc.message}", warning=True), exc.retriable


async def _write(ctx: OperatorContext, kind: ResourceKind[V], view: V, body: JSON, about: ObjectRef,
                 ready: Condition, extra: list[Condition], fields: JSON, now: datetime) -> None:
    conditions = [ready, *extra]
    previous = previous_conditions(body)
    status = {**fields, "observedGeneration": view.meta.generation, "lastSyncTime": timestamp(now),
              "conditions": render_conditions(conditions, previous, generation=view.meta.generation, now=now)}
    if not status_unchanged(body.get("status") or {}, status, now):
        await ctx.kube.patch_status(kind.kind, view.meta.namespace, view.meta.name, status)
    subject = Subject(kind.kind, view.meta.namespace, view.meta.name, view.cluster_name)
    for changed in transitions(conditions, previous):
        if changed.type == "Ready" and changed.status is True:
            continue  # the declare actions already said what happened
        if is_failure(changed):  # reason = the condition's reason, so `kubectl get events` says what is wrong
            await ctx.kube.emit_event(about, changed.reason, warning_message(subject, changed), warning=True)
        else:
            await ctx.kube.emit_event(about, f"{changed.type}{changed.status_text}",
                                      changed.message or changed.reason)


SYNC_REFRESH_S = 60.0  # lastSyncTime alone is rewritten at most this often: a drift check that finds nothing
                       # new writes nothing (100 topics at a 10 s interval would be 10 writes a second)


def status_unchanged(old: JSON, new: JSON, now: datetime) -> bool:
    """True when writing `new` would change only lastSyncTime, and the old one is recent."""
    # A None in `new` deletes the key (merge patch): unchanged when the key is absent already.
    if {k: v for k, v in old.items() if k != "lastSyncTime"} != {
            k: v for k, v in new.items() if k != "lastSyncTime" and v is not None}:
        return False
    last = old.get("lastSyncTime")
    if not last:
        return False
    return (now - datetime.fromisoformat(str(last).replace("Z", "+00:00"))).total_seconds() < SYNC_REFRESH_S


async def reconcile(kind: ResourceKind[V], body: kopf.Body, memo: kopf.Memo, index: kopf.Index) -> None:
    """`index`: the kind's kopf index of declarations by (namespace, cluster, broker object name)."""
    async def run(ctx: OperatorContext, fresh: JSON) -> None:
        await _reconcile(ctx, kind, fresh, index)

    await reconcile_fresh(memo, kind.kind, body, run)


async def _reconcile(ctx: OperatorContext, kind: ResourceKind[V], body: JSON, index: kopf.Index) -> None:
    now = datetime.now(UTC)
    about = ObjectRef.of(body)
    try:
        view = kind.parse(body)
    except SpecError as exc:
        meta = ObjectMeta.from_body(body)
        invalid = Condition("Ready", False, "InvalidSpec", str(exc))
        previous = previous_conditions(body)
        await ctx.kube.patch_status(kind.kind, meta.namespace, meta.name, {"conditions": render_conditions(
            [invalid], previous, generation=meta.generation, now=now)})
        if transitions([invalid], previous):
            await ctx.kube.emit_event(about, invalid.reason, warning_message(
                Subject(kind.kind, meta.namespace, meta.name), invalid), warning=True)
        raise kopf.PermanentError(f"invalid {kind.kind}: {exc}") from exc
    owner = find_conflict(view, index.get(index_key(view), []))
    conflict = Condition("Conflict", owner is not None, "DeclaredElsewhere" if owner else "NoConflict",
                         f"{kind.kind} {owner} (older) already declares {view.broker_name!r} on cluster "
                         f"{view.cluster_name}; this resource does nothing" if owner else "", warning=True)
    if owner is not None:
        ready = Condition("Ready", False, "Conflict", conflict.message)
        await _write(ctx, kind, view, body, about, ready, [conflict], {}, now)
        return
    target = await find_broker(ctx, view.meta.namespace, view.cluster_name)
    if target.url is None:
        await _write(ctx, kind, view, body, about, Condition("Ready", False, target.reason, target.message),
                     [conflict], {}, now)
        raise kopf.TemporaryError(target.message, delay=ctx.settings.retry_delay_s)
    last_generation = (body.get("status") or {}).get("observedGeneration")
    session = Session(now=now, spec_changed=last_generation != view.meta.generation,
                      persist=lambda fragment: _persist(ctx, kind, view, fragment))
    client = ctx.client(target.url, target.tls, target.credentials)  # pooled: not closed here
    try:
        declared = await kind.declare(view, client, session)
    except GoQueueError as exc:
        ready, retry = translate(exc)
        await _write(ctx, kind, view, body, about, ready, [conflict], {}, now)
        if retry:
            raise kopf.TemporaryError(ready.message, delay=ctx.settings.retry_delay_s) from exc
        return
    for reason, message, warning in declared.actions:
        await ctx.kube.emit_event(about, reason, message, warning=warning)
    await _write(ctx, kind, view, body, about, declared.ready, [conflict, *declared.conditions], declared.status, now)


async def _persist(ctx: OperatorContext, kind: ResourceKind[V], view: V, fragment: JSON) -> None:
    await ctx.kube.patch_status(kind.kind, view.meta.namespace, view.meta.name, fragment)


async def finalize(kind: ResourceKind[V], body: kopf.Body, memo: kopf.Memo, index: kopf.Index) -> None:
    """The delete handler: returns when the finalizer may go; raises TemporaryError to try again."""
    ctx = context_of(memo)
    meta = body["metadata"]
    about = ObjectRef.of(body)
    ctx.locks.forget(meta["uid"])
    try:
        await _finalize(ctx, kind, dict(body), about, index)
    except NamespaceTerminating:
        return  # nothing can be written there any more; the release reasons cover a terminating namespace
    except KubeError as exc:
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=ctx.settings.retry_delay_s) from exc


async def _finalize(ctx: OperatorContext, kind: ResourceKind[V], body: JSON, about: ObjectRef,
                    index: kopf.Index) -> None:
    try:
        view = kind.parse(body)
    except SpecError:
        return  # it never declared anything
    why = await _release_reason(ctx, kind, view, index)
    if why is not None:
        await ctx.kube.emit_event(about, "FinalizerReleased", why)
        return
    target = await find_broker(ctx, view.meta.namespace, view.cluster_name)
    if target.cluster_gone:
        await ctx.kube.emit_event(about, "FinalizerReleased", f"{target.message}: nothing to delete")
        return
    problem = target.message
    if target.url is not None:
        try:
            reason, message = await kind.delete(view, ctx.client(target.url, target.tls, target.credentials))
        except GoQueueError as exc:
            problem = f"{exc.code}: {exc.message}"
        else:
            await ctx.kube.emit_event(about, reason, message)
            return
    waited = _seconds_since(view.meta.deletion_timestamp)
    if waited >= ctx.settings.finalizer_timeout_s:
        await ctx.kube.emit_event(about, "FinalizerReleased", f"gave up deleting {view.broker_name!r} after "
                                  f"{waited:.0f}s ({problem}); it is left on the brokers", warning=True)
        return
    raise kopf.TemporaryError(f"cannot delete {view.broker_name!r} yet: {problem}",
                              delay=ctx.settings.retry_delay_s)


async def _release_reason(ctx: OperatorContext, kind: ResourceKind[V], view: V, index: kopf.Index) -> str | None:
    """Why the finalizer goes without touching a broker, or None."""
    if view.meta.flag(labels.RELEASE_FINALIZER_ANNOTATION):
        return f"{labels.RELEASE_FINALIZER_ANNOTATION} is set: {view.broker_name!r} is left on the brokers"
    if view.deletion_policy == "Retain":
        return f"deletionPolicy Retain: {view.broker_name!r} and its data are kept on the brokers"
    namespace = await ctx.kube.get("Namespace", "", view.meta.namespace)
    if namespace is None or namespace["metadata"].get("deletionTimestamp"):
        return f"namespace {view.meta.namespace} is being deleted"
    other = find_conflict(view, index.get(index_key(view), []), older_only=False)
    if other is not None:
        return f"{kind.kind} {other} declares {view.broker_name!r} too: it stays"
    return None


def _seconds_since(moment: str | None) -> float:
    if not moment:
        return 0.0
    started = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return (datetime.now(UTC) - started).total_seconds()
