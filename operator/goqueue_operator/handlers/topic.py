"""GoQueueTopic: create, grow partitions, change settings, change the replication factor (a replica reassignment,
rebalance/topic_factor.py) and repair drift through the broker API.

Deletion follows spec.deletionPolicy (Retain by default), with deleteIfEmpty keeping a topic that holds messages.
The shared skeleton (reconciler.py) does the rest.
"""

from __future__ import annotations

import contextlib
from typing import Any

import kopf

from goqueue.client.http import GoQueueClient
from goqueue.errors import TopicNotFound
from goqueue.models import ReassignmentGoals, TopicInfo
from goqueue_operator import GROUP, VERSION
from goqueue_operator.brokers import in_thread
from goqueue_operator.drift import topic_create, topic_drift, topic_status_fields
from goqueue_operator.handlers.reconciler import (
    Declaration,
    Declared,
    IndexKey,
    Session,
    finalize,
    index_entry,
    reconcile,
)
from goqueue_operator.rebalance.topic_factor import REASON, factor_change, nothing_planned
from goqueue_operator.settings import OperatorSettings
from goqueue_operator.status.conditions import Condition
from goqueue_operator.views import TopicView

TOPIC = (GROUP, VERSION, "goqueuetopics")


async def _describe(client: GoQueueClient, name: str) -> TopicInfo | None:
    try:
        return await in_thread(lambda: client.describe_topic(name))
    except TopicNotFound:
        return None


async def _change_factor(view: TopicView, client: GoQueueClient, live: TopicInfo, wanted: int,
                         actions: list[tuple[str, str, bool]]) -> tuple[Condition, dict[str, Any]]:
    """Wait for the topic's moving partitions, or start the moves (rebalance/topic_factor.py decides)."""
    name, throttle = view.broker_name, view.spec.throttle_bytes_per_second
    progress = await in_thread(client.reassignment_progress)
    change = factor_change(name, live.replication_factor, wanted, live.partitions, progress.partitions)
    if change.action == "wait":
        return change.ready, change.status
    # Refused with the reason (INVALID_REQUEST → RejectedByBroker) when the factor exceeds the brokers.
    plan = await in_thread(lambda: client.plan_reassignment(ReassignmentGoals(
        replication_factor={name: wanted}, throttle=throttle)))
    moves = [m for m in plan.moves if m.topic == name]
    if not moves:
        none = nothing_planned(name, live.replication_factor, wanted,
                               [len(p.replicas) for p in live.partition_details], plan.reasons)
        return none.ready, none.status
    started = await in_thread(lambda: client.execute_reassignment(moves, throttle))
    actions.append((REASON, f"topic {name!r}: replication factor {live.replication_factor} → {wanted}: "
                    f"{started.started} of {len(moves)} partitions moving, {plan.bytes_to_copy} bytes to copy "
                    f"({f'throttle {throttle} B/s' if throttle else 'unthrottled'})"
                    + (f"; not begun: {'; '.join(started.reasons[:3])}" if started.reasons else ""), False))
    return change.ready, {**change.status, "partitionsMoving": started.started, "bytesToCopy": plan.bytes_to_copy,
                          "message": f"replication factor {live.replication_factor} → {wanted}: "
                                     f"{started.started} partitions moving"}


class TopicKind:
    kind = "GoQueueTopic"

    def parse(self, body: dict[str, Any]) -> TopicView:
        return TopicView.from_body(body)

    async def declare(self, view: TopicView, client: GoQueueClient, session: Session) -> Declared:
        name = view.broker_name
        actions: list[tuple[str, str, bool]] = []
        live = await _describe(client, name)
        drift_lines: list[str] = []
        if live is None:
            request = topic_create(view)
            live = await in_thread(lambda: client.create_topic(request))
            actions.append(("TopicCreated", f"topic {name!r} created: {live.partitions} partitions, replication "
                            f"factor {live.replication_factor}", False))
        else:
            drift = topic_drift(view, live)
            if drift.update is not None:
                update = drift.update
                live = await in_thread(lambda: client.update_topic(name, update))
                reason = "TopicUpdated" if session.spec_changed else "DriftRepaired"
                actions.append((reason, f"topic {name!r}: {'; '.join(drift.changes)}", not session.spec_changed))
                drift_lines = [] if session.spec_changed else list(drift.changes)
            if drift.unfixable:
                return Declared(Condition("Ready", False, "CannotReconcile", "; ".join(drift.unfixable),
                                          warning=True), {**topic_status_fields(view, live), "drift": drift_lines},
                                actions)
            if drift.replication_factor is not None:
                ready, reassignment = await _change_factor(view, client, live, drift.replication_factor, actions)
                return Declared(ready, {**topic_status_fields(view, live), "drift": drift_lines,
                                        "reassignment": reassignment}, actions)
        ready = Condition("Ready", True, "Synced", f"topic {name!r} matches the spec")
        return Declared(ready, {**topic_status_fields(view, live), "drift": drift_lines, "reassignment": None},
                        actions)

    async def delete(self, view: TopicView, client: GoQueueClient) -> tuple[str, str]:
        name = view.broker_name
        live = await _describe(client, name)
        if live is None:
            return "TopicDeleted", f"topic {name!r} was already gone"
        if view.spec.delete_if_empty and live.messages > 0:
            return "TopicKept", f"deleteIfEmpty: topic {name!r} holds {live.messages} messages and is kept"
        with contextlib.suppress(TopicNotFound):  # deleted meanwhile: the outcome we wanted
            await in_thread(lambda: client.delete_topic(name))
        return "TopicDeleted", f"topic {name!r} and its data deleted (deletionPolicy Delete)"


KIND = TopicKind()


def index_topic(body: kopf.Body, **_: Any) -> dict[IndexKey, Declaration]:
    return index_entry(KIND, dict(body))


async def reconcile_topic(body: kopf.Body, memo: kopf.Memo, topics_by_broker_name: kopf.Index, **_: Any) -> None:
    await reconcile(KIND, body, memo, topics_by_broker_name)


async def delete_topic(body: kopf.Body, memo: kopf.Memo, topics_by_broker_name: kopf.Index, **_: Any) -> None:
    await finalize(KIND, body, memo, topics_by_broker_name)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    kopf.index(*TOPIC, id="topics_by_broker_name", registry=registry)(index_topic)
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*TOPIC, id="reconcile", registry=registry)(reconcile_topic)
    kopf.timer(*TOPIC, id="drift", interval=settings.drift_interval_s, initial_delay=settings.drift_interval_s,
               registry=registry)(reconcile_topic)
    kopf.on.delete(*TOPIC, id="finalize", registry=registry)(delete_topic)
