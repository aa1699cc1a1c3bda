"""`StateLoading`: the state partitions this broker leads, loaded when it becomes their leader and dropped when it
stops — the I/O shell of `ownership.py`.

`Broker.reconcile` tells it of every role change of a local replica (`Broker.role_listeners`, on the event loop).
For a `__consumer_state` partition it applies `next_transition`:

* LOAD — mark the partition LOADING at its leader epoch and start one task that replays it from this broker's own
  replica (`state_store.read_local`), then installs its groups in the coordinator and marks it ACTIVE;
* DROP — cancel a running load, remove the partition's groups from the coordinator (long-polls wake and answer
  NOT_COORDINATOR), forget the partition;
* RELOAD — both, in that order.

A load that fails for an operating reason (a corrupt record, a full disk) is logged and retried while the
partition is still led here; a load whose leadership moved on simply ends (the role change that moved it has its
own transition). Every task lives in `_tasks` and is awaited by `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from goqueue.consumers import state_store
from goqueue.consumers.ownership import LoadState, OwnedPartition, Transition, next_transition
from goqueue.consumers.state_store import STATE_TOPIC
from goqueue.errors import GoQueueError, NotCoordinator, NotReady
from goqueue.replicas.partition import Partition

if TYPE_CHECKING:
    from goqueue.consumers.coordinator import GroupCoordinator

log = logging.getLogger(__name__)

LOAD_RETRY_S = 1.0  # a failed load is tried again this much later, while the partition is still led here


class StateLoading:
    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.c = coordinator
        self.owned: dict[int, OwnedPartition] = {}
        self._loads: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow role changes from now on, and take up the state partitions this broker leads already."""
        self.c.broker.replicas.role_listeners.append(self.on_role_change)
        self._listening = True
        for (topic, _), partition in list(self.c.broker.replicas.partitions.items()):
            if topic == STATE_TOPIC:
                self.on_role_change(partition)

    async def wait_loaded(self, timeout_s: float) -> bool:
        """Until every load running now has finished; False when some are still running after `timeout_s`."""
        running = [task for task in self._loads.values() if not task.done()]
        if not running:
            return True
        _, pending = await asyncio.wait(running, timeout=timeout_s)
        return not pending

    async def stop(self) -> None:
        if self._listening:
            self.c.broker.replicas.role_listeners.remove(self.on_role_change)
            self._listening = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- ownership -------------------------------------------------------------------------------------------

    def check_owner(self, index: int) -> OwnedPartition:
        """The partition, when this broker coordinates its groups now; else a retriable error saying why."""
        owned = self.owned.get(index)
        if owned is None:
            raise NotCoordinator(f"this broker does not lead {STATE_TOPIC}/{index}: it does not coordinate the "
                                 "group; retry (any broker forwards the request to the coordinator)")
        if owned.state is LoadState.LOADING:
            raise NotReady(f"this broker is loading the consumer groups of {STATE_TOPIC}/{index}; retry shortly")
        return owned

    def on_role_change(self, partition: Partition) -> None:
        if partition.topic != STATE_TOPIC:
            return
        transition = next_transition(self.owned.get(partition.index), partition.is_leader, partition.leader_epoch)
        if transition in (Transition.DROP, Transition.RELOAD):
            self._drop(partition.index)
        if transition in (Transition.LOAD, Transition.RELOAD):
            self._load(partition)

    def _drop(self, index: int) -> None:
        task = self._loads.pop(index, None)
        if task is not None:
            task.cancel()
        owned = self.owned.pop(index)
        dropped = self.c.drop_groups(index)
        log.info("consumer_state.unloaded", extra={"partition": index, "epoch": owned.leader_epoch,
                                                   "groups": dropped})

    def _load(self, partition: Partition) -> None:
        owned = self.owned[partition.index] = OwnedPartition(partition.index, partition.leader_epoch)
        task = asyncio.create_task(self._run_load(partition, owned), name=f"load-{STATE_TOPIC}-{partition.index}")
        self._loads[partition.index] = task
        self._tasks.add(task)
        task.add_done_callback(self._load_done)

    def _load_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("consumer_state.load_crashed", exc_info=task.exception())

    async def _run_load(self, partition: Partition, owned: OwnedPartition) -> None:
        def is_current() -> bool:
            return (self.owned.get(owned.index) is owned and partition.is_leader
                    and partition.leader_epoch == owned.leader_epoch)

        started = time.monotonic()
        log.info("consumer_state.loading", extra={"partition": owned.index, "epoch": owned.leader_epoch})
        while True:
            try:
                records = await state_store.read_local(partition, is_current)
                break
            except NotCoordinator:
                return  # leadership moved on: its own transition takes over
            except (GoQueueError, OSError) as exc:
                log.error("consumer_state.load_failed", extra={"partition": owned.index, "error": str(exc)})
                await asyncio.sleep(LOAD_RETRY_S)
                if not is_current():
                    return
        if not is_current():
            return
        groups = state_store.replay(records, self.c.clock())
        self.c.install_groups(groups)
        owned.state = LoadState.ACTIVE
        self._loads.pop(owned.index, None)
        log.info("consumer_state.loaded", extra={
            "partition": owned.index, "epoch": owned.leader_epoch, "groups": len(groups), "records": len(records),
            "unacked": sum(g.pending() for g in groups.values()),
            "duration_ms": round((time.monotonic() - started) * 1000, 1)})
