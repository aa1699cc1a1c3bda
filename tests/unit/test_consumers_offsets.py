"""Offset reset planning and the __consumer_state record format (encode, replay, tombstones) — no I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from goqueue.consumers.groups import Group, Member
from goqueue.consumers.leases import Cursor
from goqueue.consumers.offsets import PartitionBounds, plan_reset
from goqueue.consumers.state_store import (
    GLOBAL_PAUSED,
    _Raw,
    apply_record,
    build_state,
    cursor_record,
    group_record,
    group_tombstones,
    slot_record,
    slot_tombstone,
)
from goqueue.models import GroupConfig, GroupMode, OffsetResetRequest, ResetTarget

pytestmark = pytest.mark.unit

BOUNDS = {0: PartitionBounds(10, 100, 40), 1: PartitionBounds(0, 5, None)}


def plan(to: ResetTarget, **values: int) -> dict[int, tuple[int, bool]]:
    request = OffsetResetRequest.model_validate({"topic": "t", "to": to, **values})
    return {e.partition: (e.target, e.clamped) for e in plan_reset(request, BOUNDS, {0: 50, 1: None})}


def test_reset_targets() -> None:
    assert plan(ResetTarget.EARLIEST) == {0: (10, False), 1: (0, False)}
    assert plan(ResetTarget.LATEST) == {0: (100, False), 1: (5, False)}
    assert plan(ResetTarget.OFFSET, offset=20) == {0: (20, False), 1: (5, True)}
    assert plan(ResetTarget.DATETIME, timestampMs=1) == {0: (40, False), 1: (5, False)}  # none newer: the end
    assert plan(ResetTarget.TIMESTAMP, timestampMs=1) == plan(ResetTarget.DATETIME, timestampMs=1)
    assert plan(ResetTarget.SHIFT, shiftBy=-45) == {0: (10, True), 1: (0, True)}
    assert plan(ResetTarget.SHIFT, shiftBy=3) == {0: (53, False), 1: (3, False)}


@pytest.mark.parametrize("target", [ResetTarget.OFFSET, ResetTarget.DATETIME, ResetTarget.TIMESTAMP,
                                    ResetTarget.SHIFT])
def test_targets_that_need_a_value_refuse_without_one(target: ResetTarget) -> None:
    with pytest.raises(ValidationError):
        OffsetResetRequest.model_validate({"topic": "t", "to": target})


def _replay(records: list[tuple[str, dict[str, object] | None]]) -> dict[str, Group]:
    raw = _Raw()
    for key, value in records:
        apply_record(raw, key, value)  # type: ignore[arg-type]
    return build_state(raw, now_s=500.0)


def test_state_records_replay_to_the_same_groups() -> None:
    group = Group(name="g", mode=GroupMode.ORDERED, config=GroupConfig(max_deliveries=3), topics={"t"},
                  paused=True, generation=4)
    group.members["m1"] = Member("m1", "c", "h", ("t",), 1.0, 4, [("t", 0)])
    cursor = Cursor.starting_at(0)
    slots = [cursor.deliver_new(o, "c", 9_000) for o in range(4)]
    cursor.settle(0)
    group.cursors[("t", 0)] = cursor
    records = [group_record(group), *(slot_record("g", ("t", 0), s) for s in slots),
               slot_tombstone("g", ("t", 0), 0), cursor_record("g", ("t", 0), cursor)]
    replayed = _replay(records)["g"]
    assert (replayed.mode, replayed.paused, replayed.generation, replayed.config.max_deliveries) == \
        (GroupMode.ORDERED, True, 4, 3)
    assert replayed.members["m1"].assignment == [("t", 0)]
    assert replayed.members["m1"].last_seen_s == 500.0  # a fresh session from the restart
    restored = replayed.cursors[("t", 0)]
    assert (restored.committed, restored.next, sorted(restored.slots)) == (1, 4, [1, 2, 3])
    assert restored.slots[2].deliveries == 1
    assert restored.slots[2].deadline_ms == 9_000


def test_tombstones_delete_a_group_and_everything_under_it() -> None:
    group = Group(name="g", mode=GroupMode.SHARED, config=GroupConfig())
    cursor = Cursor.starting_at(0)
    slot = cursor.deliver_new(0, "c", 1)
    group.cursors[("t", 0)] = cursor
    records = [group_record(group), cursor_record("g", ("t", 0), cursor), slot_record("g", ("t", 0), slot),
               *group_tombstones(group)]
    assert _replay(records) == {}


def test_global_pause_flag_and_unknown_keys() -> None:
    raw = _Raw()
    apply_record(raw, GLOBAL_PAUSED, {"paused": True})
    apply_record(raw, "from-the-future:x", {"a": 1})
    assert raw.all_paused
    apply_record(raw, GLOBAL_PAUSED, None)
    assert not raw.all_paused
