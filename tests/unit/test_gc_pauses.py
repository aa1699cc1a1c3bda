"""The collector's pauses are counted per generation, and the start-up freeze collects garbage before it freezes
(so no cycle is kept forever) — `goqueue/gc_pauses.py`."""

from __future__ import annotations

import gc
import weakref

import pytest
from prometheus_client import CollectorRegistry

from goqueue.gc_pauses import PAUSE_BUCKETS, GcPauses, freeze_startup_objects

pytestmark = pytest.mark.unit


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}


def test_each_collection_is_counted_in_its_generation_and_its_bucket() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses()
    pauses.install(registry)
    try:
        before = samples(registry)
        gc.collect(2)
        gc.collect(2)
        after = samples(registry)
    finally:
        pauses.uninstall(registry)
    count = ("goqueue_gc_pause_seconds_count", (("generation", "2"),))
    assert after[count] - before[count] >= 2  # and any the interpreter started itself meanwhile
    assert after[("goqueue_gc_pause_seconds_sum", (("generation", "2"),))] > 0
    cumulative = [after[("goqueue_gc_pause_seconds_bucket", (("generation", "2"), ("le", bound)))]
                  for bound in [*map(str, PAUSE_BUCKETS), "+Inf"]]
    assert cumulative == sorted(cumulative)
    assert cumulative[-1] - before[("goqueue_gc_pause_seconds_bucket", (("generation", "2"), ("le", "+Inf")))] >= 2
    gc.collect(2)
    assert samples(registry) == {}, "still exported after uninstall"
    assert pauses._on_collection not in gc.callbacks


def test_the_start_up_freeze_collects_cycles_first_and_freezes_the_rest() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b  # garbage only the collector can free (a cycle)
    kept = Node()
    try:
        frozen = freeze_startup_objects()
        assert gone() is None, "a cycle made garbage before the freeze was frozen instead of freed"
        # Frozen objects are still freed when their last reference goes (another thread of this process may drop
        # some meanwhile), so the count read afterwards can only have fallen, and only by a few.
        after = gc.get_freeze_count()
        assert 0 < after <= frozen
        assert frozen - after < frozen // 100, (frozen, after)
        assert not any(o is kept for o in gc.get_objects()), "a live object was not frozen"
    finally:
        gc.unfreeze()  # the test process keeps collecting as before
