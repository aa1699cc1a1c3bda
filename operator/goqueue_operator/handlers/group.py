"""GoQueueConsumerGroup: declare the group with its settings and paused flag, apply offset resets exactly once
(offset_resets.py), report state, members, lag, inflight and dead-lettered messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import kopf

from goqueue.client.http import GoQueueClient
from goqueue.errors import GroupHasMembers, GroupNotFound, InvalidRequest, NotFound, TopicNotFound
from goqueue.models import GroupInfo
from goqueue_operator import GROUP, VERSION
from goqueue_operator.brokers import in_thread
from goqueue_operator.drift import dead_letter_topics, desired_group_spec, group_drift, group_figures
from goqueue_operator.handlers.reconciler import (
    Declaration,
    Declared,
    IndexKey,
    Session,
    finalize,
    index_entry,
    reconcile,
)
from goqueue_operator.offset_resets import (
    APPLIED,
    APPLYING,
    FAILED,
    apply_requests,
    entry,
    pending_resets,
    plan_request,
    planned_offsets,
    recorded,
    render,
    with_entry,
)
from goqueue_operator.settings import OperatorSettings
from goqueue_operator.status.conditions import Condition
from goqueue_operator.views import AppliedReset, GroupView

CONSUMER_GROUP = (GROUP, VERSION, "goqueueconsumergroups")
NOT_BLOCKED = Condition("OffsetResetBlocked", False, "NotBlocked")


async def _describe(client: GoQueueClient, name: str) -> GroupInfo | None:
    try:
        return await in_thread(lambda: client.describe_group(name))
    except GroupNotFound:
        return None


async def _dead_lettered(client: GoQueueClient, topics: Sequence[str]) -> int:
    total = 0
    for topic in topics:
        try:
            total += (await in_thread(partial(client.describe_topic, topic))).messages
        except TopicNotFound:
            continue
    return total


class ResetRun:
    """Applies the pending offset resets of one reconcile, recording each step in status before the next."""

    def __init__(self, view: GroupView, client: GoQueueClient, session: Session, live: GroupInfo) -> None:
        self.view, self.client, self.session, self.live = view, client, session, live
        self.entries: list[AppliedReset] = list(view.record.offset_resets)
        self.actions: list[tuple[str, str, bool]] = []
        self.blocked = NOT_BLOCKED

    async def _record(self, new: AppliedReset) -> None:
        self.entries = with_entry(self.view, self.entries, new)
        await self.session.persist({"offsetResets": render(self.entries)})

    async def run(self) -> None:
        name = self.view.broker_name
        for reset in pending_resets(self.view, self.entries):
            started = recorded(self.entries, reset.id)
            if started is not None and started.phase == APPLYING:
                offsets = list(started.partitions)  # a crash came between record and apply: re-apply the plan
            else:
                if self.live.members and not reset.force:
                    self.blocked = Condition("OffsetResetBlocked", True, "GroupHasMembers", (
                        f"offset reset {reset.id!r} waits: {len(self.live.members)} member(s) are live; stop the "
                        "consumers, or add a new reset with force: true"), warning=True)
                    return
                try:
                    plan = await in_thread(partial(self.client.reset_offsets, name, plan_request(reset)))
                except (TopicNotFound, NotFound) as exc:
                    self.blocked = Condition("OffsetResetBlocked", True, "TopicNotFound",
                                             f"offset reset {reset.id!r} waits: {exc.message}", warning=True)
                    return
                except InvalidRequest as exc:
                    await self._record(entry(reset.id, FAILED, self.session.now, f"{exc.code}: {exc.message}"))
                    self.actions.append(("OffsetResetFailed", f"offset reset {reset.id!r}: {exc.message}", True))
                    continue
                offsets = planned_offsets(plan)
                await self._record(entry(reset.id, APPLYING, self.session.now,
                                         f"moving {len(offsets)} partition(s)", offsets))
            try:
                for request in apply_requests(offsets, reset.force):
                    await in_thread(partial(self.client.reset_offsets, name, request))
            except GroupHasMembers as exc:
                self.blocked = Condition("OffsetResetBlocked", True, "GroupHasMembers",
                                         f"offset reset {reset.id!r} waits: {exc.message}", warning=True)
                return
            moved = ", ".join(f"{o.topic}/{o.partition}→{o.offset}" for o in offsets) or "no partitions"
            await self._record(entry(reset.id, APPLIED, self.session.now, f"moved {moved}", offsets))
            self.actions.append(("OffsetReset", f"offset reset {reset.id!r} applied: {moved}", False))


class GroupKind:
    kind = "GoQueueConsumerGroup"

    def parse(self, body: dict[str, Any]) -> GroupView:
        return GroupView.from_body(body)

    async def declare(self, view: GroupView, client: GoQueueClient, session: Session) -> Declared:
        name = view.broker_name
        actions: list[tuple[str, str, bool]] = []
        live = await _describe(client, name)
        drift = group_drift(view, live) if live is not None else None
        if live is None or (drift is not None and drift.declare):
            spec = desired_group_spec(view)
            live = await in_thread(lambda: client.declare_group(name, spec))
            if drift is None:
                actions.append(("GroupCreated", f"consumer group {name!r} declared ({spec.mode.value})", False))
            else:
                reason = "GroupUpdated" if session.spec_changed else "DriftRepaired"
                actions.append((reason, f"consumer group {name!r}: {'; '.join(drift.changes)}",
                                not session.spec_changed))
                if drift.pause_change is not None:
                    actions.append(("GroupPaused" if drift.pause_change else "GroupResumed",
                                    f"consumer group {name!r} {'paused' if drift.pause_change else 'resumed'}",
                                    False))
        resets = ResetRun(view, client, session, live)
        await resets.run()
        actions.extend(resets.actions)
        figures = group_figures(live)
        status = {
            "groupName": name, "state": live.state.value, "paused": live.paused, "members": len(live.members),
            "lag": figures.lag, "topicLag": figures.topic_lag, "inflight": live.inflight,
            "deadLettered": await _dead_lettered(client, dead_letter_topics(view, live)),
            "offsetResets": render(resets.entries),
        }
        if drift is not None and drift.unfixable:
            ready = Condition("Ready", False, "CannotReconcile", "; ".join(drift.unfixable), warning=True)
        else:
            ready = Condition("Ready", True, "Synced", f"consumer group {name!r} matches the spec")
        return Declared(ready, status, actions, [resets.blocked])

    async def delete(self, view: GroupView, client: GoQueueClient) -> tuple[str, str]:
        name = view.broker_name
        try:
            await in_thread(lambda: client.delete_group(name))
        except GroupNotFound:
            return "GroupDeleted", f"consumer group {name!r} was already gone"
        return "GroupDeleted", f"consumer group {name!r} and its offsets deleted (deletionPolicy Delete)"


KIND = GroupKind()


def index_group(body: kopf.Body, **_: Any) -> dict[IndexKey, Declaration]:
    return index_entry(KIND, dict(body))


async def reconcile_group(body: kopf.Body, memo: kopf.Memo, groups_by_broker_name: kopf.Index, **_: Any) -> None:
    await reconcile(KIND, body, memo, groups_by_broker_name)


async def delete_group(body: kopf.Body, memo: kopf.Memo, groups_by_broker_name: kopf.Index, **_: Any) -> None:
    await finalize(KIND, body, memo, groups_by_broker_name)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    kopf.index(*CONSUMER_GROUP, id="groups_by_broker_name", registry=registry)(index_group)
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*CONSUMER_GROUP, id="reconcile", registry=registry)(reconcile_group)
    kopf.timer(*CONSUMER_GROUP, id="drift", interval=settings.drift_interval_s,
               initial_delay=settings.drift_interval_s, registry=registry)(reconcile_group)
    kopf.on.delete(*CONSUMER_GROUP, id="finalize", registry=registry)(delete_group)
