"""`StateLoading`: the state partitions this broker leads, loaded when it becomes their leader and dropped when it
stops — the I/O shell of `ownership.py`.

The host tells it of every role change of a local replica (`StatePartitions.subscribe_roles`: a `RoleChange`, on
the event loop). For a `__consumer_state` partition it applies `next_transition` to the shared table
(`CoordinatedGroups.owned` and `.groups`):

* LOAD — mark the partition LOADING at its leader epoch and start one task that replays it from this broker's own
  replica (`state_store.read_local`), then installs its groups in the table and marks it ACTIVE;
* DROP — cancel a running load, remove the partition's groups from the table (long-polls wake and answer
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
from collections.abc import Callable

from goqueue.consumers import state_store
from goqueue.consumers.coordinated import CoordinatedGroups
from goqueue.consumers.ownership import LoadState, OwnedPartition, Transition, next_transition
from goqueue.consumers.port import LocalReplica, RoleChange, StatePartitions
from goqueue.consumers.state_store import STATE_TOPIC
from goqueue.errors import GoQueueError, NotCoordinator

log = logging.getLogger(__name__)

LOAD_RETRY_S = 1.0  # a failed load is tried again this much later, while the partition is still led here


class StateLoading:
    def __init__(self, host: StatePartitions, table: CoordinatedGroups, clock: Callable[[], float]) -> None:
        self.host = host
        self.table = table
        self.clock = clock
        self._loads: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow role changes from now on, and take up the state partitions this broker leads already."""
        self.host.subscribe_roles(self.on_role_change)
        self._listening = True
        for change in self.host.roles(STATE_TOPIC):
            self.on_role_change(change)

    async def wait_loaded(self, timeout_s: float) -> bool:
        """Until every load running now has finished; False when some are still running after `timeout_s`."""
        running = [task for task in self._loads.values() if not task.done()]
        if not running:
            return True
        _, pending = await asyncio.wait(running, timeout=timeout_s)
        return not pending

    async def stop(self) -> None:
        if self._listening:
            self.host.unsubscribe_roles(self.on_role_change)
            self._listening = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- role changes ----------------------------------------------------------------------------------------

    def on_role_change(self, change: RoleChange) -> None:
        if change.topic != STATE_TOPIC:
            return
        transition = next_transition(self.table.owned.get(change.index), change.is_leader, change.leader_epoch)
        if transition in (Transition.DROP, Transition.RELOAD):
            self._drop(change.index)
        if transition in (Transition.LOAD, Transition.RELOAD):
            self._load(change)

    def _drop(self, index: int) -> None:
        task = self._loads.pop(index, None)
        if task is not None:
            task.cancel()
        owned = self.table.owned.pop(index)
        dropped = self.table.drop(index)
        log.info("consumer_state.unloaded", extra={"partition": index, "epoch": owned.leader_epoch,
                                                   "groups": dropped})

    def _load(self, change: RoleChange) -> None:
        owned = self.table.owned[change.index] = OwnedPartition(change.index, change.leader_epoch)
        replica = self.host.local_replica(STATE_TOPIC, change.index)
        task = asyncio.create_task(self._run_load(replica, owned), name=f"load-{STATE_TOPIC}-{change.index}")
        self._loads[change.index] = task
        self._tasks.add(task)
        task.add_done_callback(self._load_done)

    def _load_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("consumer_state.load_crashed", exc_info=task.exception())

    async def _run_load(self, replica: LocalReplica | None, owned: OwnedPartition) -> None:
        def is_current() -> bool:
            return (self.table.owned.get(owned.index) is owned and replica is not None and replica.is_leader
                    and replica.leader_epoch == owned.leader_epoch)

        if replica is None:
            return  # no replica here any more: the role change that dropped it drops the partition too
        started = time.monotonic()
        log.info("consumer_state.loading", extra={"partition": owned.index, "epoch": owned.leader_epoch})
        while True:
            try:
                records = await state_store.read_local(replica, owned.index, is_current)
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
        groups = state_store.replay(records, self.clock())
        self.table.install(groups)
        owned.state = LoadState.ACTIVE
        self._loads.pop(owned.index, None)
        log.info("consumer_state.loaded", extra={
            "partition": owned.index, "epoch": owned.leader_epoch, "groups": len(groups), "records": len(records),
            "unacked": sum(g.pending() for g in groups.values()),
            "duration_ms": round((time.monotonic() - started) * 1000, 1)})
