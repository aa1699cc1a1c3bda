"""The in-sync replica sets of the partitions this broker leads: every ISR_TICK_S the leader shrinks its ISR by
followers that lag more than `replication.replicaLagMax` and expands it by followers whose fetch reached the high
watermark (the rules are pure: `replication/isr.py`), proposing each change as a compare-and-set on the leader
epoch and partition version. Joining followers that stopped fetching stop holding the high watermark back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from goqueue.cluster.membership import ClusterMembership, log_task_death
from goqueue.config import Settings
from goqueue.errors import GoQueueError
from goqueue.metrics import BrokerMetrics
from goqueue.replicas.partition import Partition
from goqueue.replication import commands
from goqueue.replication import isr as isr_rules
from goqueue.replication.metadata import MetadataConflict

log = logging.getLogger(__name__)

ISR_TICK_S = 1.0


class IsrUpkeep:
    def __init__(self, settings: Settings, metrics: BrokerMetrics, membership: ClusterMembership,
                 led: Callable[[], list[Partition]]) -> None:
        self.settings = settings
        self.metrics = metrics
        self.membership = membership
        self.broker_id = settings.broker_id()
        self._led = led  # the local replicas whose role is LEADER
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="isr")
        self._task.add_done_callback(log_task_death)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(ISR_TICK_S)
            for partition in self._led():
                await self._update(partition)

    async def _update(self, partition: Partition) -> None:
        if not partition.is_leader or partition.isr_change_pending:
            return  # a change in flight: a joiner it names holds the high watermark back until it is answered
        now, lag_max_s = time.monotonic(), self.settings.replication.replica_lag_max_s
        if isr_rules.forget_stale_joiners(partition.followers, now, lag_max_s) and partition.advance_high_watermark():
            partition.notify()
        proposed = isr_rules.next_isr(self.broker_id, partition.isr, partition.replicas, partition.followers,
                                      partition.log.high_watermark, now, lag_max_s)
        if proposed is None:
            return
        partition.isr_change_pending, partition.proposed_isr = True, proposed
        previous = list(partition.isr)
        command = commands.change_isr(partition.topic, partition.index, leader_epoch=partition.leader_epoch,
                                      expected_version=partition.version, isr=proposed)
        try:
            await self.membership.propose(command)
            log.info("partition.isr_changed", extra={
                "topic": partition.topic, "partition": partition.index, "from": previous, "to": proposed})
            self.metrics.isr_changes.labels("shrink" if len(proposed) < len(previous) else "expand").inc()
        except (MetadataConflict, GoQueueError) as exc:
            partition.isr_change_pending, partition.proposed_isr = False, []
            log.info("partition.isr_change_refused", extra={"topic": partition.topic,
                                                            "partition": partition.index, "reason": str(exc)})
