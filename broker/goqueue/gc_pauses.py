"""The garbage collector, kept out of the tail latency: start-up objects frozen, every collection's pause measured.

Why: CPython's full (generation 2) collection walks every object the process tracks. In a started broker most of
them were made at start-up (modules, FastAPI's and grpc's structures, pydantic schemas, the metadata) and never
become garbage, yet each full collection walks them all again while holding the GIL, so the event loop and the log
writer both stop. Measured on this project's 2-core machine under load (docs/PERFORMANCE.md, "Garbage collection"):
full collections of 16 to 170 ms while producing; with the start-up objects frozen (`gc.freeze`, what Instagram did for
its Django fleet) the full collection during the same load took about 1 ms.

Frozen objects are still freed by reference counting when dropped; only reference cycles among them would stay,
and a full collection just before the freeze leaves none. `freeze_startup_objects` runs once, when the broker has
started (`BrokerServer.start`); `GcPauses` exports `goqueue_gc_pause_seconds{generation}` and
`goqueue_gc_frozen_objects`, so an operator can tell a collector pause from the disk or the network.

The pause callback runs inside the collector, on whichever thread allocated: it takes no lock (a lock held by the
interrupted code on the same thread would deadlock) and only adds to plain counters, which the scrape reads.
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

PAUSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
GENERATIONS = 3


def freeze_startup_objects() -> int:
    """Collect once, then move every object left to the permanent generation; how many were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class GcPauses:
    """Per generation: how many collections paused the process for how long. Installed once per process."""

    def __init__(self) -> None:
        self._counts = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in range(GENERATIONS)]  # the last: above every bound
        self._sums = [0.0] * GENERATIONS
        self._started = 0.0

    def install(self, registry: CollectorRegistry) -> None:
        gc.callbacks.append(self._on_collection)
        registry.register(self)

    def uninstall(self, registry: CollectorRegistry) -> None:
        gc.callbacks.remove(self._on_collection)
        registry.unregister(self)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        seconds = time.perf_counter() - self._started
        generation = min(int(info["generation"]), GENERATIONS - 1)
        self._counts[generation][bisect.bisect_left(PAUSE_BUCKETS, seconds)] += 1
        self._sums[generation] += seconds

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "goqueue_gc_pause_seconds", "Pauses of the Python garbage collector (every thread waits), by generation.",
            labels=["generation"])
        # Copied first: a collection may come during the scrape, and its sum and buckets must agree.
        all_counts, sums = [counts[:] for counts in self._counts], self._sums[:]
        for generation in range(GENERATIONS):
            counts, cumulative, buckets = all_counts[generation], 0, []
            for bound, count in zip([*map(str, PAUSE_BUCKETS), "+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            pauses.add_metric([str(generation)], buckets, sums[generation])
        yield pauses
        frozen = GaugeMetricFamily("goqueue_gc_frozen_objects",
                                   "Objects moved to the permanent generation at start-up (never walked again).")
        frozen.add_metric([], gc.get_freeze_count())
        yield frozen
